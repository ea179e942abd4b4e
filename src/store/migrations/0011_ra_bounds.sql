-- Bounds on SMS and uploads.

-- The global SMS budget: one row per clock hour (unix seconds / 3600), counted by every daemon
-- on this database with one conditional update, so the budget holds across daemons.
CREATE TABLE sms_budget (
    hour  BIGINT PRIMARY KEY,
    sent  BIGINT NOT NULL
);

-- Bytes an order has uploaded, replaced uploads included: the per-order byte quota.
CREATE TABLE ra_upload_totals (
    order_id TEXT PRIMARY KEY,
    bytes    BIGINT NOT NULL
);

-- Uploads of one kind of material per order, the first included: how often it can be replaced.
CREATE TABLE ra_upload_counts (
    order_id TEXT NOT NULL,
    kind     TEXT NOT NULL,
    uploads  BIGINT NOT NULL,
    PRIMARY KEY (order_id, kind)
);

-- Whether a blob is still referenced, asked on every replacement and by the orphan sweep.
CREATE INDEX ra_materials_sha256 ON ra_materials (sha256);
