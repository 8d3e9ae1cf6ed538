-- The search benchmark's table: n payments over 90 days (python -m bench.search).

-- name: generate_payments
-- $1 rows, $2 the newest created_at. Providers and accounts in turn, statuses weighted
-- (most paid or pending), 0.5 % with an anomaly, 2 % late; updated up to a day later.
INSERT INTO payments (provider, account, merchant_ref, provider_ref, status, amount,
                      currency, amount_paid, late, anomaly, created_at, updated_at,
                      next_check_at, seq)
SELECT (ARRAY['paycore', 'ccpayment', 'hdfc', 'plural'])[1 + (i % 4)::int],
       'shop-' || (i % 3),
       'ord-' || lpad(i::text, 8, '0'),
       CASE WHEN i % 10 = 0 THEN NULL ELSE 'prv-' || md5(i::text) END,
       CASE WHEN r < 0.55 THEN 'paid' WHEN r < 0.75 THEN 'pending'
            WHEN r < 0.82 THEN 'expired' WHEN r < 0.88 THEN 'failed'
            WHEN r < 0.92 THEN 'captured' WHEN r < 0.95 THEN 'underpaid'
            WHEN r < 0.97 THEN 'refunded' WHEN r < 0.985 THEN 'partially_refunded'
            WHEN r < 0.995 THEN 'cancelled' WHEN r < 0.998 THEN 'overpaid'
            ELSE 'charged_back' END,
       25.00, 'USD', 25.00,
       i % 50 = 0,
       CASE WHEN i % 200 = 0 THEN 'currency_conflict' END,
       created,
       created + make_interval(secs => (i * 7919) % 86400),
       NULL,
       1 + (i % 3)::int
FROM (
    SELECT i, ((i * 2654435761) % 1000) / 1000.0 AS r,
           $2::timestamptz - make_interval(secs => ($1 - i) * (90 * 86400.0 / $1)) AS created
    FROM generate_series(1, $1::bigint) AS i
) AS g

-- name: analyze_payments
ANALYZE payments

-- name: middle_row
-- The key of the row $1 deep in the search's order: a cursor far down the pages.
SELECT created_at, id FROM payments ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1
