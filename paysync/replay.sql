-- Event replay (paysync events replay, POST /v1/events/replay, the console): outbox rows
-- already published, in commit order (so each payment's in seq order), every filter
-- optional. Unpublished rows are left to the relay.

-- name: replay_selection
SELECT o.id, o.event_id::text AS event_id, o.payment_id, o.seq, o.routing_key,
       o.body::text AS body, p.provider, p.account, p.merchant_ref
FROM outbox o
JOIN payments p ON p.id = o.payment_id
WHERE o.published_at IS NOT NULL
  AND ($1::text IS NULL OR p.provider = $1)
  AND ($2::text IS NULL OR p.account = $2)
  AND ($3::text IS NULL OR p.merchant_ref = $3)
  AND ($4::timestamptz IS NULL OR o.created_at >= $4)
  AND ($5::text IS NULL OR (o.body::jsonb -> 'payment' ->> 'status') = $5)
ORDER BY o.id
LIMIT $6
