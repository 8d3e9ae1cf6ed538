-- Queries of the console (read-only): the overview's counts and the reconcile runs.

-- name: transitions_by_source
SELECT source AS label, count(*)::int AS value
FROM transitions
WHERE at >= now() - make_interval(secs => $1)
GROUP BY source

-- name: refusals_by_outcome
-- Receipts the worker recorded but did not apply (the fold refused them as stale, known,
-- conflicting, or only a hint). Callbacks refused at ingest never reach Postgres.
SELECT outcome AS label, count(*)::int AS value
FROM inbox
WHERE applied_at >= now() - make_interval(secs => $1) AND outcome <> 'applied'
GROUP BY outcome

-- name: payments_by_status
SELECT coalesce(status, '(none yet)') AS label, count(*)::int AS value
FROM payments
WHERE updated_at >= now() - make_interval(secs => $1)
GROUP BY status

-- name: reconcile_runs
SELECT id, trigger, filters, dry_run, started_at, finished_at, checked, in_sync, drift,
       not_found, failed
FROM reconcile_runs
ORDER BY started_at DESC, id DESC
LIMIT $1

-- name: reconcile_run
SELECT id, trigger, filters, dry_run, started_at, finished_at, checked, in_sync, drift,
       not_found, failed
FROM reconcile_runs
WHERE id = $1

-- name: reconcile_run_checks
SELECT c.id, p.provider, p.account, p.merchant_ref, c.our_status, c.provider_status,
       c.their_status, c.outcome, c.action, c.error, c.checked_at
FROM reconcile_checks c
JOIN payments p ON p.id = c.payment_id
WHERE c.run_id = $1
ORDER BY c.id
