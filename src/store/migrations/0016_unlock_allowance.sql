-- The PIN-unlock allowance of a cloud key (review M1: every unlock restarts the PIN counter, so
-- unlimited unlocks are unlimited PIN guesses). Kept on the credential row itself so the check
-- and the count are one UPDATE: two unlocks racing each other cannot both pass a count taken
-- before either committed. `unlock_window_start` is when the current window's first unlock
-- happened (unix seconds, 0: none yet); `unlock_count` the unlocks since then.
ALTER TABLE credentials ADD COLUMN unlock_window_start BIGINT NOT NULL DEFAULT 0;
ALTER TABLE credentials ADD COLUMN unlock_count BIGINT NOT NULL DEFAULT 0;
