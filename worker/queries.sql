-- Queries of the worker: applying observations and relaying the outbox.

-- name: lock_payment
-- Create the payment on first sight; either way lock its row and return it.
INSERT INTO payments (provider, account, merchant_ref)
VALUES ($1, $2, $3)
ON CONFLICT (provider, account, merchant_ref) DO UPDATE SET updated_at = payments.updated_at
RETURNING id, provider, account, merchant_ref, status, provider_ref, amount, currency,
          expires_at, amount_paid, amount_refunded, late, anomaly, seq, metadata,
          -- Created by this very statement: a new id has no receipts yet.
          (xmax = 0) AS created

-- name: lock_known_payments
-- A batch's payments that exist already, locked in one stable order before anything
-- else, so two batches (or a batch and a single message) never wait on each other in a
-- circle. Payments created by the batch are locked in the batch's own (sorted) order.
SELECT p.provider, p.account, p.merchant_ref
FROM payments p
JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(provider, account, merchant_ref)
  USING (provider, account, merchant_ref)
ORDER BY p.provider, p.account, p.merchant_ref
FOR UPDATE OF p

-- name: locked_payment_with_receipts
-- A payment whose row this transaction has locked already (lock_known_payments), with
-- the receipts its state is the fold of (as payment_receipts): one round trip. Only for
-- a row already locked: the statement's snapshot then holds every receipt committed.
SELECT id, provider, account, merchant_ref, status, provider_ref, amount, currency,
       expires_at, amount_paid, amount_refunded, late, anomaly, seq, metadata,
       (SELECT coalesce(jsonb_agg(i.observation), '[]'::jsonb) FROM inbox i
        WHERE i.payment_id = payments.id AND i.outcome <> 'hint') AS receipts
FROM payments
WHERE provider = $1 AND account = $2 AND merchant_ref = $3
FOR UPDATE

-- name: lock_batch_payments
-- A batch's payments, created on first sight, all locked by one statement in the order
-- given (the batch's sorted keys, so batches never wait on each other in a circle).
-- Each row is returned as it is after the wait for its lock.
INSERT INTO payments (provider, account, merchant_ref)
SELECT k.provider, k.account, k.merchant_ref
FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY
     AS k(provider, account, merchant_ref, n)
ORDER BY k.n
ON CONFLICT (provider, account, merchant_ref) DO UPDATE SET updated_at = payments.updated_at
RETURNING id, provider, account, merchant_ref, status, provider_ref, amount, currency,
          expires_at, amount_paid, amount_refunded, late, anomaly, seq, metadata,
          (xmax = 0) AS created

-- name: batch_receipts
-- Every inbox row of payments this transaction has locked (a statement after the lock,
-- so its snapshot holds every receipt committed): the receipts to fold (hints are never
-- folded) and the (dedup_key, message_id) pairs already recorded.
SELECT payment_id, dedup_key, message_id, outcome, observation
FROM inbox
WHERE payment_id = ANY($1::bigint[])

-- name: write_batch
-- Everything a batch writes, in one statement (one round trip): its receipts, the
-- transitions (each pointing at its receipt by (dedup_key, message_id)), the events in
-- the order they were decided (the relay publishes by id), each changed payment's final
-- row (``touched``: its state changed, not only its metadata) and, when $35, the relay's
-- wake-up. The counts let the caller check that every planned row was written.
WITH receipts AS (
    INSERT INTO inbox (dedup_key, payment_id, message_id, source, kind, received_at, raw,
                       observation, outcome)
    SELECT r.dedup_key, r.payment_id, r.message_id, r.source, r.kind, r.received_at, r.raw,
           r.observation::jsonb, r.outcome
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                $6::timestamptz[], $7::bytea[], $8::text[], $9::text[]) WITH ORDINALITY
         AS r(dedup_key, payment_id, message_id, source, kind, received_at, raw,
              observation, outcome, n)
    ORDER BY r.n
    ON CONFLICT (dedup_key, message_id) DO NOTHING
    RETURNING id, dedup_key, message_id
), steps AS (
    INSERT INTO transitions (payment_id, seq, from_status, to_status, source, inbox_id)
    SELECT t.payment_id, t.seq, t.from_status, t.to_status, t.source, r.id
    FROM unnest($10::bigint[], $11::int[], $12::text[], $13::text[], $14::text[],
                $15::text[], $16::text[]) WITH ORDINALITY
         AS t(payment_id, seq, from_status, to_status, source, dedup_key, message_id, n)
    JOIN receipts r ON r.dedup_key = t.dedup_key AND r.message_id = t.message_id
    ORDER BY t.n
    RETURNING 1
), events AS (
    INSERT INTO outbox (event_id, payment_id, seq, routing_key, body)
    SELECT e.event_id, e.payment_id, e.seq, e.routing_key, e.body::json
    FROM unnest($17::uuid[], $18::bigint[], $19::int[], $20::text[], $21::text[])
         WITH ORDINALITY AS e(event_id, payment_id, seq, routing_key, body, n)
    ORDER BY e.n
    RETURNING 1
), rows AS (
    UPDATE payments p
    SET status = u.status, provider_ref = u.provider_ref, amount = u.amount,
        currency = u.currency, expires_at = u.expires_at, amount_paid = u.amount_paid,
        amount_refunded = u.amount_refunded, late = u.late, anomaly = u.anomaly,
        seq = u.seq, metadata = u.metadata::jsonb,
        updated_at = CASE WHEN u.touched THEN now() ELSE p.updated_at END
    FROM unnest($22::bigint[], $23::text[], $24::text[], $25::numeric[], $26::text[],
                $27::timestamptz[], $28::numeric[], $29::numeric[], $30::bool[],
                $31::text[], $32::int[], $33::text[], $34::bool[])
         AS u(id, status, provider_ref, amount, currency, expires_at, amount_paid,
              amount_refunded, late, anomaly, seq, metadata, touched)
    WHERE p.id = u.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM receipts) AS receipts,
       (SELECT count(*) FROM steps) AS transitions,
       (SELECT count(*) FROM events) AS events,
       (SELECT count(*) FROM rows) AS payments,
       CASE WHEN $35::bool THEN pg_notify('paysync_outbox', '') END AS notified

-- name: payment_receipts
-- The set the payment's state is the fold of: every receipt of every fact, duplicates
-- included (a later report of a fact may carry an earlier time). Hints are never folded.
SELECT dedup_key, observation FROM inbox
WHERE payment_id = $1 AND outcome <> 'hint'

-- name: lock_payment_by_provider_ref
-- A return URL that names only the provider's order id: the payment, if paysync knows it.
SELECT id, provider, account, merchant_ref, status, provider_ref, amount, currency,
       expires_at, amount_paid, amount_refunded, late, anomaly, seq, metadata
FROM payments
WHERE provider = $1 AND account = $2 AND provider_ref = $3
ORDER BY id
LIMIT 1
FOR UPDATE

-- name: lock_payment_by_id
-- A refold: the stored row, locked as a receipt would lock it.
SELECT id, provider, account, merchant_ref, status, provider_ref, amount, currency,
       expires_at, amount_paid, amount_refunded, late, anomaly, seq, metadata
FROM payments
WHERE id = $1
FOR UPDATE

-- name: payment_ids_after
SELECT id FROM payments WHERE id > $1 ORDER BY id LIMIT $2

-- name: check_now
-- A hint: the reconciler polls this payment at its next round.
UPDATE payments SET next_check_at = now() WHERE id = $1

-- name: insert_inbox
-- NULL when this very message was recorded before (a redelivery): nothing to do.
INSERT INTO inbox (dedup_key, payment_id, message_id, source, kind, received_at, raw,
                   observation, outcome)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (dedup_key, message_id) DO NOTHING
RETURNING id

-- name: update_payment
UPDATE payments
SET status = $2, provider_ref = $3, amount = $4, currency = $5, expires_at = $6,
    amount_paid = $7, amount_refunded = $8, late = $9, anomaly = $10, seq = $11,
    updated_at = now()
WHERE id = $1

-- name: set_metadata
-- The merchant's registration brings metadata; the first one registered stays.
UPDATE payments SET metadata = $2 WHERE id = $1 AND metadata = jsonb_build_object()

-- name: insert_transition
INSERT INTO transitions (payment_id, seq, from_status, to_status, source, inbox_id)
VALUES ($1, $2, $3, $4, $5, $6)

-- name: insert_outbox
INSERT INTO outbox (event_id, payment_id, seq, routing_key, body)
VALUES ($1, $2, $3, $4, $5)

-- name: notify_outbox
SELECT pg_notify('paysync_outbox', '')

-- name: relay_try_lock
-- One relay at a time, so events leave in commit order.
SELECT pg_try_advisory_xact_lock($1)

-- name: outbox_backlog
SELECT count(*) AS backlog,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_age
FROM outbox WHERE published_at IS NULL

-- name: relay_batch
SELECT id, event_id::text AS event_id, payment_id, routing_key, body::text AS body,
       extract(epoch FROM now() - created_at)::float8 AS age
FROM outbox
WHERE published_at IS NULL
ORDER BY id
LIMIT $1

-- name: relay_mark_published
UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])
