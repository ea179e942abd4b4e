-- Cloud Signature Consortium API authorisations (src/csc/). `credentials/authorize` opens a
-- signing session for one credential and records it here under a random handle; the holder
-- approves on the phone as for any session (which computes the signatures); `authorizeCheck`
-- then issues the SAD once (only its SHA-256 is kept) and `signHash` spends it once, releasing
-- the approved signatures. No foreign keys: backups restore tables in name order.
CREATE TABLE csc_authorizations (
    handle          TEXT PRIMARY KEY,       -- random, returned to the platform by authorize
    platform        TEXT NOT NULL,          -- the registered platform that asked
    session_id      TEXT NOT NULL UNIQUE,   -- its signing session
    credential_id   TEXT NOT NULL,          -- the credential named in authorize
    created_at      BIGINT NOT NULL,
    sad_hash        TEXT UNIQUE,            -- hex SHA-256 of the SAD, once issued
    sad_expires_at  BIGINT,                 -- unix seconds: no signHash after this
    spent_at        BIGINT                  -- unix seconds: signHash released the signatures
)
