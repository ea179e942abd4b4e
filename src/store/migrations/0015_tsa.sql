-- The timestamp authority's serial numbers (RFC 3161 §2.4.2: unique for each token the TSA
-- issues). One row holds the next unused serial; a daemon takes a block of them with one
-- UPDATE ... RETURNING and hands them out from memory, so daemons sharing this database never
-- repeat one, and a block a daemon did not finish is simply never used.
CREATE TABLE tsa_serials (
    id   INTEGER PRIMARY KEY,
    next BIGINT NOT NULL
);
INSERT INTO tsa_serials (id, next) VALUES (1, 1)
