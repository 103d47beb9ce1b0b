-- duro schema, version 3 (PostgreSQL). Each queue claim, takeover and recovery marks the rows it
-- takes with a token of its own, so one sent again after its commit's reply was lost finds the
-- rows its first commit took instead of leaving them PENDING on this executor with nothing
-- running them.
ALTER TABLE workflow_status ADD COLUMN claim_token TEXT;
