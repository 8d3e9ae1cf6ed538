-- Queries of the benchmark's own database (created, migrated and dropped per invocation).

-- name: reset
-- Every run starts from empty tables, whichever side ran before.
TRUNCATE payments, inbox, transitions, outbox, reconcile_checks, reconcile_runs RESTART IDENTITY

-- name: count_inbox
SELECT count(*) FROM inbox

-- name: count_published
SELECT count(*) FROM outbox WHERE published_at IS NOT NULL

-- name: register_payments
-- Expected payments, not due yet: each run makes them all due at once (make_due).
INSERT INTO payments (provider, account, merchant_ref, provider_ref, amount, currency,
                      next_check_at)
SELECT $1, $2, ref, pref, $5, $6, NULL
FROM unnest($3::text[], $4::text[]) AS t (ref, pref)

-- name: make_due
-- Only the simulated provider's: no other account may be asked (its status API is real).
UPDATE payments SET next_check_at = now(), check_attempts = 0 WHERE provider = $1

-- name: finished_rounds
SELECT count(*) FROM reconcile_runs WHERE finished_at IS NOT NULL AND checked > 0

-- name: queue_wait
-- Callback received by ingest → the worker's transaction began (p50, p99; seconds).
SELECT percentile_cont(ARRAY[0.5, 0.99]::float8[])
       WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received_at)::float8)
FROM inbox

-- name: relay_wait
-- Outbox row written (the worker's transaction began) → the relay's transaction began.
SELECT percentile_cont(ARRAY[0.5, 0.99]::float8[])
       WITHIN GROUP (ORDER BY extract(epoch FROM published_at - created_at)::float8)
FROM outbox
WHERE published_at IS NOT NULL
