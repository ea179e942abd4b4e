-- Back office: client certificates issued to operators and machine clients by the operator CA
-- (so they can be revoked, and a revocation refuses the next handshake), and the relying
-- platforms allowed to open signing sessions.
CREATE TABLE operator_certificates (
    serial      TEXT PRIMARY KEY,           -- lowercase hex
    fingerprint TEXT NOT NULL UNIQUE,       -- SHA-256 of the DER, hex: what the TLS layer checks
    subject     TEXT NOT NULL,              -- RFC 4514
    role        TEXT NOT NULL,              -- reviewer | operator | auditor | web-front | relying-platform
    status      TEXT NOT NULL,              -- active | revoked
    not_after   BIGINT NOT NULL,
    der         BLOB NOT NULL,
    issued_at   BIGINT NOT NULL,
    revoked_at  BIGINT,
    reason      TEXT
);

CREATE TABLE relying_platforms (
    name          TEXT PRIMARY KEY,         -- slug, stable identifier
    display_name  TEXT NOT NULL,            -- shown to holders on their phone before they sign
    fingerprint   TEXT NOT NULL UNIQUE,     -- SHA-256 of the platform's client certificate, hex
    callback_url  TEXT NOT NULL,            -- https only
    status        TEXT NOT NULL,            -- active | disabled
    registered_at BIGINT NOT NULL
);
