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

-- Security-relevant events, append-only.
CREATE TABLE audit_events (
    id      {autoid},
    at      BIGINT NOT NULL,                -- unix milliseconds
    kind    TEXT NOT NULL,                  -- e.g. certificate.issued
    actor   TEXT NOT NULL,                  -- cli, daemon, or an operator identity
    serial  TEXT,
    detail  TEXT NOT NULL                   -- JSON
);
CREATE INDEX audit_events_kind ON audit_events (kind);
