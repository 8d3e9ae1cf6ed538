-- The naive per-event pipeline's tables and writes (bench/naive.py), in the benchmark's
-- database beside paysync's own tables.

-- name: create
CREATE TABLE IF NOT EXISTS naive_payments (
    merchant_ref text PRIMARY KEY,
    status text NOT NULL,
    amount_paid numeric NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS naive_inbox (
    record_id text PRIMARY KEY,
    merchant_ref text NOT NULL,
    raw bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)

-- name: reset
TRUNCATE naive_payments, naive_inbox

-- name: insert_inbox
-- The dedup row: false when the record was seen before.
INSERT INTO naive_inbox (record_id, merchant_ref, raw) VALUES ($1, $2, $3)
ON CONFLICT (record_id) DO NOTHING
RETURNING true

-- name: upsert_payment
INSERT INTO naive_payments (merchant_ref, status, amount_paid) VALUES ($1, 'paid', $2::numeric)
ON CONFLICT (merchant_ref) DO UPDATE
SET amount_paid = naive_payments.amount_paid + excluded.amount_paid, updated_at = now()
