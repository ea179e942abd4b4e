-- The purge of finished signing sessions (attacker review H2: PAdES sessions hold their PDFs)
-- looks them up by when they last changed.
CREATE INDEX signing_sessions_updated ON signing_sessions (updated_at);
