-- Chained audit checkpoints (issue 16): filled in by the audit work.
SELECT 1;
