-- Every payment intent of an order (review M5). An order may show several QR codes over its
-- life (another wallet, a code near expiry); each stays payable at the provider until closed,
-- so each is kept here and a webhook for any of them is matched to its order: accepted, or
-- refunded when the order is already paid or no longer wants paying.
CREATE TABLE ra_payment_intents (
    provider_ref      TEXT PRIMARY KEY,       -- the provider's reference (the QR code)
    order_id          TEXT NOT NULL,
    method            TEXT NOT NULL,          -- wechat | alipay ('' for intents of orders before this migration)
    amount_fen        BIGINT NOT NULL,
    qr_url            TEXT NOT NULL,
    state             TEXT NOT NULL,          -- open | superseded | closed | paid | refund_due | refunded
    expires_at        BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    paid_at           BIGINT,                 -- when the provider reported it paid
    refund_claimed_at BIGINT,                 -- a daemon is calling the provider to refund (a lease)
    refund_ref        TEXT,                   -- the provider's refund reference
    refunded_at       BIGINT
);
CREATE INDEX ra_payment_intents_order ON ra_payment_intents (order_id);
CREATE INDEX ra_payment_intents_state ON ra_payment_intents (state);

-- The one intent each order knew of before this migration.
INSERT INTO ra_payment_intents (provider_ref, order_id, method, amount_fen, qr_url, state, expires_at, created_at,
    updated_at, paid_at, refunded_at)
SELECT payment_ref, id, '', amount_fen, '',
    CASE WHEN refunded_at IS NOT NULL THEN 'refunded' WHEN paid_at IS NOT NULL THEN 'paid' ELSE 'open' END,
    0, updated_at, updated_at, paid_at, refunded_at
FROM ra_orders WHERE payment_ref IS NOT NULL;
