-- The CA hierarchy: one row per CA key and certificate (root, issuing CAs, OCSP responders).
CREATE TABLE authorities (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL,            -- root | issuing | ocsp
    issuer        TEXT,                     -- the authority that signed this one (NULL for a self-signed root)
    key_label     TEXT NOT NULL,            -- CKA_LABEL of the HSM key pair
    key_algorithm TEXT NOT NULL,
    certificate   BLOB NOT NULL,            -- DER
    fingerprint   TEXT NOT NULL,            -- SHA-256 of the DER, hex
    not_after     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);

-- Every serial ever reserved (issuance step 2). A row exists before the HSM signs, so a serial
-- can never be used twice, even across crashes. A serial without a certificate is a reservation
-- whose issuance did not complete; it is kept, never reused.
CREATE TABLE serials (
    serial      TEXT PRIMARY KEY,           -- lowercase hex, no colons
    issuer      TEXT NOT NULL,
    profile     TEXT NOT NULL,
    reserved_at BIGINT NOT NULL
);

-- Issued certificates (issuance step 5), stored before they are returned.
CREATE TABLE certificates (
    serial            TEXT PRIMARY KEY REFERENCES serials (serial),
    issuer            TEXT NOT NULL,        -- authorities.name
    profile           TEXT NOT NULL,
    status            TEXT NOT NULL,        -- issued | revoked
    subject           TEXT NOT NULL,        -- RFC 4514 string, for search and display
    identifier        TEXT,                 -- credit code or resident ID (subject serialNumber)
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    der               BLOB NOT NULL,
    fingerprint       TEXT NOT NULL,
    crl_shard         BIGINT NOT NULL       -- the CRL partition named in its CDP, fixed at issuance
);
CREATE INDEX certificates_identifier ON certificates (identifier);
CREATE INDEX certificates_not_after ON certificates (not_after);

-- Security-relevant events, append-only and hash-chained: each row carries the SHA-256 of the
-- previous one, so `cloudca audit verify` finds an edited, deleted, inserted or reordered row.
CREATE TABLE audit_events (
    id        {autoid},
    seq       BIGINT NOT NULL UNIQUE,       -- 1, 2, 3, ... without gaps
    at        BIGINT NOT NULL,              -- unix milliseconds
    kind      TEXT NOT NULL,                -- the action, e.g. certificate.issued
    actor     TEXT NOT NULL,                -- cli, daemon, or an operator identity
    serial    TEXT,                         -- the object
    detail    TEXT NOT NULL,                -- JSON, never a secret
    prev_hash TEXT NOT NULL,                -- hash of entry seq - 1 (64 zeros for the first)
    hash      TEXT NOT NULL                 -- SHA-256 over this entry and prev_hash
);
CREATE INDEX audit_events_kind ON audit_events (kind);

-- The head of the chain. Appending updates this row first, which serialises appenders across
-- processes (SQLite write lock, PostgreSQL row lock) so the chain never forks.
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
-- Checkpoints: every so often the head (seq, hash) is signed by the audit key in the HSM, so
-- rewriting the chain (or cutting its end) needs that key, not just database access.
CREATE TABLE audit_checkpoints (
    seq       BIGINT PRIMARY KEY,
    hash      TEXT NOT NULL,
    at        BIGINT NOT NULL,              -- unix milliseconds
    signature BLOB NOT NULL                 -- by the `audit` authority's key, over checkpoint_message
);

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
