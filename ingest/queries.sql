-- Queries of the /v1 API's registration (read-only): the terms a registration is compared
-- with. The timeline's queries are the kernel's (paysync/timeline/queries.sql).

-- name: registered_terms
SELECT amount, currency, provider_ref FROM payments
WHERE provider = $1 AND account = $2 AND merchant_ref = $3
