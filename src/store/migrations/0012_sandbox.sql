-- The sandbox providers' own state (payment intents, micro-deposits, face sessions), so that
-- several daemons and a restart see the same sandbox a real provider would be. Used only in
-- sandbox mode; a production deployment never writes here.
CREATE TABLE sandbox_state (
    kind       TEXT NOT NULL,              -- payment-intent | micro-deposit | face
    id         TEXT NOT NULL,              -- the provider's reference
    value      TEXT NOT NULL,              -- JSON
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
