-- 0003: return-URL hints. A verified customer redirect is recorded in the inbox with
-- outcome 'hint' (it asks for an immediate status poll and never changes a status), and
-- Plural's redirect names only the provider's order id, so payments are found by it too.

ALTER TABLE inbox DROP CONSTRAINT inbox_outcome_known;
ALTER TABLE inbox ADD CONSTRAINT inbox_outcome_known
    CHECK (outcome IN ('applied', 'stale', 'duplicate', 'anomaly', 'hint'));
CREATE INDEX payments_provider_ref ON payments (provider, account, provider_ref)
    WHERE provider_ref IS NOT NULL;
