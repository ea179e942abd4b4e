-- Revocation status: a revoked-only table (so building a CRL never scans all certificates),
-- CRL numbers, and pre-signed OCSP responses.

-- One row per revoked certificate. `id` orders revocations, so other processes sharing the
-- database find new ones by polling `id > last seen`.
CREATE TABLE revocations (
    id              {autoid},
    serial          TEXT NOT NULL UNIQUE REFERENCES certificates (serial),
    issuer          TEXT NOT NULL,
    crl_shard       BIGINT NOT NULL,
    revoked_at      BIGINT NOT NULL,        -- unix seconds
    reason          BIGINT,                 -- RFC 5280 CRLReason; NULL for unspecified
    invalidity_date BIGINT,
    not_after       BIGINT NOT NULL,        -- copied so CRL builds can drop expired entries
    entry           BLOB NOT NULL           -- the CRL entry DER, encoded once at revocation
);
-- Covering index: a CRL build reads only this index, in serial order.
CREATE INDEX revocations_crl ON revocations (issuer, crl_shard, serial, not_after, entry);

-- The last CRL number used per CRL (issuing CA and shard): monotonic, incremented atomically.
CREATE TABLE crl_numbers (
    issuer    TEXT NOT NULL,
    crl_shard BIGINT NOT NULL,
    number    BIGINT NOT NULL,
    PRIMARY KEY (issuer, crl_shard)
);

-- The last signed CRL of each partition, so a daemon that restarts while the HSM is away still
-- serves a valid CRL, and daemons sharing the database serve the newest one.
CREATE TABLE published_crls (
    issuer      TEXT NOT NULL,
    crl_shard   BIGINT NOT NULL,
    number      BIGINT NOT NULL,
    der         BLOB NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    entries     BIGINT NOT NULL,
    PRIMARY KEY (issuer, crl_shard)
);

-- Pre-signed OCSP responses (DER), refreshed before next_update.
CREATE TABLE ocsp_responses (
    serial      TEXT PRIMARY KEY REFERENCES certificates (serial),
    issuer      TEXT NOT NULL,
    revoked     BIGINT NOT NULL,                -- 1 when the response says revoked
    der         BLOB NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL
);
CREATE INDEX ocsp_responses_next_update ON ocsp_responses (next_update);
