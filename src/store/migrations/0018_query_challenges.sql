-- The random code (captcha) the order query's identity fallbacks ask for with the SMS code
-- (issue 17, handbook §4.3 F9, F10, F14, F15): one row per code shown on a page, taken (deleted)
-- by its first answer, right or wrong, so a code is never tried twice.
CREATE TABLE query_challenges (
    id          TEXT PRIMARY KEY,          -- random, the page's hidden field
    answer_hash TEXT NOT NULL,             -- SHA-256 of id and the upper-case answer
    expires_at  BIGINT NOT NULL
);
CREATE INDEX query_challenges_expiry ON query_challenges (expires_at);
