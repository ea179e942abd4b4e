-- Seals: PNG images bound to an organisation (its credit code, the identifier of its
-- organisation certificate). The organisation's certificate administrator (the agent who holds
-- the organisation certificate) manages members; seal additions and changes wait for review.
CREATE TABLE org_members (
    credit_code TEXT NOT NULL,
    phone       TEXT NOT NULL,
    role        TEXT NOT NULL,              -- admin | seal-admin | staff
    added_by    TEXT NOT NULL,
    added_at    BIGINT NOT NULL,
    PRIMARY KEY (credit_code, phone)
);

CREATE TABLE seals (
    id          TEXT PRIMARY KEY,
    credit_code TEXT NOT NULL,
    name        TEXT NOT NULL,
    png         BLOB NOT NULL,
    status      TEXT NOT NULL,              -- active | retired
    updated_at  BIGINT NOT NULL
);
CREATE INDEX seals_org ON seals (credit_code);

CREATE TABLE seal_requests (
    id           TEXT PRIMARY KEY,
    credit_code  TEXT NOT NULL,
    seal_id      TEXT,                      -- the seal to change; NULL for a new seal
    name         TEXT NOT NULL,
    png          BLOB NOT NULL,
    requested_by TEXT NOT NULL,             -- phone
    status       TEXT NOT NULL,             -- pending | approved | rejected
    decided_by   TEXT,
    created_at   BIGINT NOT NULL,
    decided_at   BIGINT
);
