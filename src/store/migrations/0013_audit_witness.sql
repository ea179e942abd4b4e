-- Chained audit checkpoints (issue 16, H6). Each new checkpoint carries a counter (1, 2, 3 ...)
-- and the SHA-256 of the previous checkpoint's signed message, and its signature covers both:
-- deleting, editing or inserting a checkpoint breaks the chain of checkpoints itself. Rows
-- written before this migration keep both NULL (legacy): they start the chain, and the first
-- chained checkpoint links to the last of them. The same SQL serves SQLite and PostgreSQL
-- (SQLite cannot add a UNIQUE column, so uniqueness is an index; both allow many NULLs in it).
ALTER TABLE audit_checkpoints ADD COLUMN counter BIGINT;
ALTER TABLE audit_checkpoints ADD COLUMN prev_hash TEXT;
CREATE UNIQUE INDEX audit_checkpoints_counter ON audit_checkpoints (counter);
