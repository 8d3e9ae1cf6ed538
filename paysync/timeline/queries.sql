-- A payment's state and its timeline (read-only): the /v1 API and `paysync payment show`.

-- name: payment_by_ref
-- Every column, so the timeline also shows columns that later migrations add.
SELECT * FROM payments WHERE provider = $1 AND account = $2 AND merchant_ref = $3

-- name: payment_observations
-- Every receipt, duplicates included, in the order the worker recorded them.
SELECT id, dedup_key, source, kind, received_at, applied_at, outcome, message_id,
       observation, raw
FROM inbox
WHERE payment_id = $1
ORDER BY id

-- name: payment_transitions
SELECT seq, from_status, to_status, source, inbox_id, at
FROM transitions
WHERE payment_id = $1
ORDER BY seq

-- name: payment_events
SELECT event_id, seq, routing_key, created_at, published_at, body
FROM outbox
WHERE payment_id = $1
ORDER BY seq, id
