-- Leases: work that must happen once across several daemons sharing this database (CRL builds,
-- OCSP refresh, the RA's background pass, audit checkpoints) is done by whoever holds its
-- lease. A holder renews it while it works; a daemon that dies stops renewing and another
-- takes over once `expires_at` passes. `epoch` rises whenever the holder changes (a fencing
-- token for logs and metrics).
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,   -- unix milliseconds
    epoch      BIGINT NOT NULL
)
