-- duro schema, version 3 (PostgreSQL). Each claim marks the rows it takes with a token of its
-- own, so a claim sent again after its commit's reply was lost finds the rows its first commit
-- took instead of leaving them PENDING on this executor with nothing running them.
ALTER TABLE workflow_status ADD COLUMN claim_token TEXT;
