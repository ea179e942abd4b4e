-- The registration authority: application orders of every flow, their materials, payments,
-- order-query sessions and expiry reminders. An order's steps are persisted as they complete
-- (`data` holds each completed step's validated input), so an interrupted order resumes.
CREATE TABLE ra_orders (
    id             TEXT PRIMARY KEY,        -- the order number people see, e.g. RA20261124-7Q3K9M2X
    channel        TEXT NOT NULL,
    flow           TEXT NOT NULL,           -- org-new | personal-new | renewal | change | revocation | reissue | unlock | seal
    state          TEXT NOT NULL,           -- open | offline | review | approved | completed | rejected | cancelled
    subject_key    TEXT,                    -- credit code or resident ID, once entered
    open_key       TEXT UNIQUE,             -- channel + subject_key while the order is open; NULL after
    agent_phone    TEXT,                    -- E.164, once the agent (or person) is verified
    token_hash     TEXT NOT NULL,           -- SHA-256 of the applicant's order token
    data           TEXT NOT NULL,           -- JSON: completed steps and their validated input
    serial         TEXT,                    -- the certificate concerned, or the one issued
    approval_id    TEXT,                    -- the holder approval an approved new order created
    amount_fen     BIGINT NOT NULL,
    payment_ref    TEXT,
    paid_at        BIGINT,
    refunded_at    BIGINT,
    invoice_no     TEXT,
    submitted_at   BIGINT,
    decided_at     BIGINT,
    decided_by     TEXT,
    reason         TEXT,                    -- why rejected or cancelled
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    version        BIGINT NOT NULL          -- optimistic concurrency: every update bumps it
);
CREATE INDEX ra_orders_subject ON ra_orders (subject_key);
CREATE INDEX ra_orders_state ON ra_orders (state, submitted_at);
CREATE INDEX ra_orders_payment ON ra_orders (payment_ref);
CREATE INDEX ra_orders_serial ON ra_orders (serial);

-- Uploaded materials, content-addressed: one copy of identical bytes however often uploaded.
CREATE TABLE ra_blobs (
    sha256       TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,             -- as sniffed from the bytes
    bytes        BLOB NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE TABLE ra_materials (
    order_id    TEXT NOT NULL,
    kind        TEXT NOT NULL,              -- business-licence | id-front | id-back | authorization-letter | seal-image | other
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    PRIMARY KEY (order_id, kind)
);

-- Payment webhooks already applied: a replayed event changes nothing.
CREATE TABLE ra_payment_events (
    event_id    TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    status      TEXT NOT NULL,
    received_at BIGINT NOT NULL
);

-- Order-query sessions after an identity check; only the token's SHA-256 is kept.
CREATE TABLE ra_queries (
    token_hash  TEXT PRIMARY KEY,
    subject_key TEXT NOT NULL,
    phone       TEXT,                       -- the agent's phone; NULL for the legal representative (sees all)
    expires_at  BIGINT NOT NULL
);

-- Expiry reminders sent, so each goes out once per certificate and threshold.
CREATE TABLE ra_reminders (
    serial  TEXT NOT NULL,
    days    BIGINT NOT NULL,
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (serial, days)
);
