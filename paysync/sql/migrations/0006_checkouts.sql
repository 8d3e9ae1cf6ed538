-- 0006: hosted checkouts paysync created (POST /v1/checkouts), one per Idempotency-Key and
-- one per order. Written by ingest's /v1 API only: an idempotency record, never payment
-- state (the payment is registered through the queue like every registration).
-- state: 'creating' while the provider is being asked, 'created' once it answered with
-- its order, 'unknown' when the answer was lost (timeout, 5xx): no payment is registered
-- for it, and the same key asks again only where the provider's create is retry-safe.

CREATE TABLE checkouts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key text        NOT NULL,
    request_hash    text        NOT NULL,
    provider        text        NOT NULL,
    account         text        NOT NULL,
    merchant_ref    text        NOT NULL,
    state           text        NOT NULL DEFAULT 'creating',
    provider_ref    text,
    redirect_url    text,
    expires_at      timestamptz,
    provider_status text,
    registered      boolean     NOT NULL DEFAULT false,
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT checkouts_idempotency_key UNIQUE (idempotency_key),
    CONSTRAINT checkouts_one_per_order UNIQUE (provider, account, merchant_ref),
    CONSTRAINT checkouts_state_known CHECK (state IN ('creating', 'created', 'unknown'))
);
