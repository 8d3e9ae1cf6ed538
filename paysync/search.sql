-- Payment search (GET /v1/payments, paysync payment list, the console): every filter is
-- optional (NULL: not filtered); newest first by (created_at, id), a keyset cursor.
-- Run with plan_cache_mode = force_custom_plan (search_custom_plans), so each execution is
-- planned with its values: an absent filter folds away and the matching index is used.
-- Two forms with the same filters (tests/integration/test_search.py runs every case through
-- both): search_payments walks an index in the result order until it has a page, best when
-- matches are spread over it; search_payments_fenced finds every match first (the prefix or
-- updated_at index), then sorts them: for a prefix or an updated_at range, whose matches
-- cluster far down the created_at order (a walk would read most of the table first).

-- name: search_custom_plans
SELECT set_config('plan_cache_mode', 'force_custom_plan', true)

-- name: search_payments
SELECT id, provider, account, merchant_ref, provider_ref, status, amount, currency,
       amount_paid, amount_refunded, late, anomaly, expires_at, seq, created_at, updated_at
FROM payments
WHERE ($1::text IS NULL OR provider = $1)
  AND ($2::text IS NULL OR account = $2)
  AND ($3::text[] IS NULL OR status = ANY ($3::text[]))
  AND ($4::boolean IS NULL OR (anomaly IS NOT NULL) = $4)
  AND ($5::boolean IS NULL OR late = $5)
  AND ($6::timestamptz IS NULL OR created_at >= $6)
  AND ($7::timestamptz IS NULL OR created_at < $7)
  AND ($8::timestamptz IS NULL OR updated_at >= $8)
  AND ($9::timestamptz IS NULL OR updated_at < $9)
  AND ($10::text IS NULL OR merchant_ref LIKE $10)
  AND ($11::text IS NULL OR provider_ref LIKE $11)
  AND ($12::timestamptz IS NULL OR (created_at, id) < ($12, $13::bigint))
ORDER BY created_at DESC, id DESC
LIMIT $14

-- name: search_payments_fenced
SELECT * FROM (
SELECT id, provider, account, merchant_ref, provider_ref, status, amount, currency,
       amount_paid, amount_refunded, late, anomaly, expires_at, seq, created_at, updated_at
FROM payments
WHERE ($1::text IS NULL OR provider = $1)
  AND ($2::text IS NULL OR account = $2)
  AND ($3::text[] IS NULL OR status = ANY ($3::text[]))
  AND ($4::boolean IS NULL OR (anomaly IS NOT NULL) = $4)
  AND ($5::boolean IS NULL OR late = $5)
  AND ($6::timestamptz IS NULL OR created_at >= $6)
  AND ($7::timestamptz IS NULL OR created_at < $7)
  AND ($8::timestamptz IS NULL OR updated_at >= $8)
  AND ($9::timestamptz IS NULL OR updated_at < $9)
  AND ($10::text IS NULL OR merchant_ref LIKE $10)
  AND ($11::text IS NULL OR provider_ref LIKE $11)
  AND ($12::timestamptz IS NULL OR (created_at, id) < ($12, $13::bigint))
OFFSET 0  -- a fence: the planner may not walk the created_at index for the LIMIT
) AS matched
ORDER BY created_at DESC, id DESC
LIMIT $14
