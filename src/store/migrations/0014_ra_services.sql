-- Order-query sessions remember the channel they were opened in (issue 17, handbook §4.2:
-- an agent and the legal representative see the orders within the current channel). NULL: a
-- session opened without a channel (every channel), as before.
ALTER TABLE ra_queries ADD COLUMN channel TEXT;
