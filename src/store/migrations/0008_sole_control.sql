-- Sole control of holder keys (issue 14).
--
-- Approvals expire, and enrolment claims one (approved -> enrolling) before any key or
-- certificate is made, so one approval gives at most one certificate. The holder's own identity
-- (name and resident ID of the person who will hold the key: the applicant for a personal
-- certificate, the verified agent for an organisation's) is recorded so the identity proof before
-- the first PIN checks that person, not whoever holds the phone.
ALTER TABLE approvals ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
UPDATE approvals SET expires_at = created_at + 2592000 WHERE expires_at = 0;
ALTER TABLE approvals ADD COLUMN holder_name TEXT;
ALTER TABLE approvals ADD COLUMN holder_id_number TEXT;

-- Identity proofs: a check the server starts with an identity provider (face with liveness, or
-- bank card four elements plus a code to the card's reserved phone) for one action on one
-- approval or credential. A PIN is set (enrolment, unlock, reset) only by spending a passed proof.
CREATE TABLE identity_proofs (
    id          TEXT PRIMARY KEY,
    phone       TEXT NOT NULL,              -- the logged-in holder who started it
    purpose     TEXT NOT NULL,              -- enrol | unlock | reset
    target      TEXT NOT NULL,              -- approval id (enrol) or credential id
    method      TEXT NOT NULL,              -- face | bank_card
    reference   TEXT NOT NULL,              -- the provider's face session, or the card's reserved phone
    state       TEXT NOT NULL,              -- pending | passed | failed | used
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX identity_proofs_target ON identity_proofs (target, created_at);

-- One authorisation per signing session: a second approval of the same session cannot unwrap.
CREATE UNIQUE INDEX authorizations_session ON authorizations (session_id);

-- Named staff a seal's administrators allow to stamp with that seal.
CREATE TABLE seal_users (
    seal_id     TEXT NOT NULL,
    phone       TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    PRIMARY KEY (seal_id, phone)
);

-- One certificate administrator per organisation.
CREATE UNIQUE INDEX org_members_one_admin ON org_members (credit_code) WHERE role = 'admin';
