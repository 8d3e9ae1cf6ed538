-- Queries of POST /v1/checkouts (ingest/checkouts.py): the checkouts table's idempotency
-- records. Payment state is never written here.

-- name: claim_checkout
INSERT INTO checkouts (idempotency_key, request_hash, provider, account, merchant_ref)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING
RETURNING id

-- name: checkout_by_key
SELECT id, request_hash, provider, account, merchant_ref, state, provider_ref, redirect_url,
       expires_at, provider_status, registered, updated_at < now() - make_interval(secs => $2) AS stale
FROM checkouts WHERE idempotency_key = $1

-- name: reclaim_checkout
UPDATE checkouts SET state = 'creating', error = NULL, updated_at = now()
WHERE id = $1 AND (state = 'unknown' OR (state = 'creating' AND updated_at < now() - make_interval(secs => $2)))
RETURNING id

-- name: checkout_created
UPDATE checkouts
SET state = 'created', provider_ref = $2, redirect_url = $3, expires_at = $4,
    provider_status = $5, updated_at = now()
WHERE id = $1

-- name: checkout_unknown
UPDATE checkouts SET state = 'unknown', error = $2, updated_at = now() WHERE id = $1

-- name: checkout_registered
UPDATE checkouts SET registered = true, updated_at = now() WHERE id = $1

-- name: forget_checkout
DELETE FROM checkouts WHERE id = $1
