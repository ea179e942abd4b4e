-- The RA's verified contacts: who may act for a certificate's subject. One row per order that
-- an officer (or the channel's automatic rule) approved, written in the same transaction as
-- the approval, with the agent and legal representative that order verified; `serial` is the
-- certificate the order produced, filled in when the order completes. Consent, query and
-- renewal codes go only to phones found here (review H1, H2), never to what an open,
-- failed or cancelled order typed.
CREATE TABLE ra_contacts (
    order_id        TEXT PRIMARY KEY,
    subject_key     TEXT NOT NULL,           -- credit code or resident ID
    serial          TEXT,                    -- the certificate the order produced, once issued
    agent_phone     TEXT,                    -- the verified agent (or person) who applied
    legal_rep_name  TEXT,                    -- organisations: the legal representative checked
    legal_rep_id    TEXT,
    legal_rep_phone TEXT,
    approved_at     BIGINT NOT NULL
);
CREATE INDEX ra_contacts_subject ON ra_contacts (subject_key, approved_at);
CREATE INDEX ra_contacts_serial ON ra_contacts (serial);
