-- CSC v2 `signatures/signDoc` (issue 20): the platform sends the PDF, the holder approves it on
-- the phone, and `signatures/signPolling` releases the signed PDF once. Such an authorisation
-- has no SAD: `kind` tells the two apart, so neither endpoint accepts the other's handle.
ALTER TABLE csc_authorizations ADD COLUMN kind TEXT NOT NULL DEFAULT 'hashes';
