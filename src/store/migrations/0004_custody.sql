-- Cloud keys and signing. An approval says "this identity, reachable at this phone, may hold a
-- certificate of this profile" (the back office creates it now; the RA workflow later). A
-- credential is the holder's certificate with its wrapped key and PIN hash.
CREATE TABLE approvals (
    id          TEXT PRIMARY KEY,
    profile     TEXT NOT NULL,
    subject     TEXT NOT NULL,              -- JSON [[attribute, value], ...] in order
    identifier  TEXT NOT NULL,              -- credit code or resident ID (subject serialNumber)
    phone       TEXT NOT NULL,              -- E.164
    status      TEXT NOT NULL,              -- approved | used | cancelled
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX approvals_phone ON approvals (phone);

CREATE TABLE credentials (
    id              TEXT PRIMARY KEY,
    approval_id     TEXT NOT NULL UNIQUE REFERENCES approvals (id),
    phone           TEXT NOT NULL,
    serial          TEXT NOT NULL UNIQUE,   -- the certificate
    key_algorithm   TEXT NOT NULL,
    key_blob        BLOB,                   -- wrapped under the KEK; NULL once destroyed
    blob_version    BIGINT NOT NULL,
    binding         TEXT NOT NULL,          -- HMAC(pepper, id, serial, blob): blobs cannot move between rows
    pin_hash        TEXT NOT NULL,          -- Argon2id PHC string over the peppered PIN
    failed_attempts BIGINT NOT NULL,
    status          TEXT NOT NULL,          -- active | locked | destroyed
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX credentials_phone ON credentials (phone);

-- One-time codes sent by SMS (hashed), for login and for proving identity again (unlock).
CREATE TABLE sms_codes (
    id          {autoid},
    phone       TEXT NOT NULL,
    purpose     TEXT NOT NULL,              -- login | unlock
    code_hash   TEXT NOT NULL,
    sent_at     BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    attempts    BIGINT NOT NULL,
    used        BIGINT NOT NULL
);
CREATE INDEX sms_codes_phone ON sms_codes (phone, sent_at);

-- Mobile app sessions: only the SHA-256 of the bearer token is stored.
CREATE TABLE mobile_sessions (
    token_hash  TEXT PRIMARY KEY,
    phone       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked     BIGINT NOT NULL
);

-- Signing sessions opened by relying platforms.
CREATE TABLE signing_sessions (
    id              TEXT PRIMARY KEY,
    platform        TEXT NOT NULL,
    start_token     TEXT NOT NULL UNIQUE,
    start_secret    BLOB NOT NULL,
    created_ms      BIGINT NOT NULL,
    scan_deadline   BIGINT NOT NULL,        -- unix seconds: no claim after this
    expires_at      BIGINT NOT NULL,        -- unix seconds: no approval after this
    request         TEXT NOT NULL,          -- JSON: hashes, description, documents, signer, format
    state           TEXT NOT NULL,          -- pending | claimed | signed | refused | expired
    phone           TEXT,
    credential_id   TEXT,
    result          TEXT,                   -- JSON, when signed
    updated_at      BIGINT NOT NULL
);

-- Single-use signing authorisations: holder, credential and the exact hashes, minutes long.
CREATE TABLE authorizations (
    id              TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES signing_sessions (id),
    credential_id   TEXT NOT NULL REFERENCES credentials (id),
    hashes_digest   TEXT NOT NULL,          -- SHA-256 over the ordered hashes
    expires_at      BIGINT NOT NULL,
    used            BIGINT NOT NULL
);
