-- 0002: the inbox keeps every receipt of a fact, so the timeline shows each retry.
-- A fact (dedup_key) may now have several rows: the first carries the outcome of applying
-- it; later receipts from other messages are recorded with outcome 'duplicate'. The same
-- message delivered again (a redelivery after a crash) still adds nothing.

ALTER TABLE inbox DROP CONSTRAINT inbox_dedup_key;
ALTER TABLE inbox ADD CONSTRAINT inbox_receipt UNIQUE (dedup_key, message_id);
CREATE INDEX inbox_dedup_key ON inbox (dedup_key);
