-- Queries of the reconciler. It never writes payment state: only when to check next.

-- name: claim_due
-- A round's work: due payments, claimed for a lease so no other replica polls them now.
WITH due AS (
    SELECT id FROM payments
    WHERE next_check_at <= now()
    ORDER BY next_check_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE payments p
SET next_check_at = now() + make_interval(secs => $2), check_attempts = p.check_attempts + 1
FROM due WHERE p.id = due.id
RETURNING p.id, p.provider, p.account, p.merchant_ref, p.provider_ref, p.status, p.created_at,
          p.expires_at, p.check_attempts

-- name: select_for_job
-- An operator's job: every payment of a provider matching the filters, settled or not.
SELECT id, provider, account, merchant_ref, provider_ref, status, created_at, expires_at,
       check_attempts
FROM payments
WHERE provider = $1
  AND ($2::text IS NULL OR account = $2)
  AND created_at >= $3
  AND ($4::text[] IS NULL OR merchant_ref = ANY($4))
ORDER BY id

-- name: set_next_check
UPDATE payments SET next_check_at = $2 WHERE id = $1

-- name: count_due
SELECT count(*) FROM payments WHERE next_check_at <= now()

-- name: insert_run
INSERT INTO reconcile_runs (trigger, filters, dry_run) VALUES ($1, $2, $3) RETURNING id

-- name: finish_run
UPDATE reconcile_runs
SET finished_at = now(), checked = $2, in_sync = $3, drift = $4, not_found = $5, failed = $6
WHERE id = $1

-- name: insert_check
-- A run's drift table: checks that were not in sync.
INSERT INTO reconcile_checks (run_id, payment_id, our_status, provider_status, their_status,
                              outcome, action, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
