-- The whole schema as the migrations leave it (tests check they agree). Read this, change migrations.

CREATE TABLE payments (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider        text        NOT NULL,
    account         text        NOT NULL,
    merchant_ref    text        NOT NULL,
    provider_ref    text,
    -- NULL until an observation says something about the status.
    status          text,
    amount          numeric,
    currency        text,
    amount_paid     numeric     NOT NULL DEFAULT 0,
    amount_refunded numeric     NOT NULL DEFAULT 0,
    late            boolean     NOT NULL DEFAULT false,
    anomaly         text,
    expires_at      timestamptz,
    seq             integer     NOT NULL DEFAULT 0,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- When the reconciler checks the payment next (NULL: settled, no more checks).
    next_check_at   timestamptz DEFAULT now() + interval '1 minute',
    check_attempts  integer     NOT NULL DEFAULT 0,
    CONSTRAINT payments_natural_key UNIQUE (provider, account, merchant_ref),
    CONSTRAINT payments_status_known CHECK (status IN (
        'pending', 'failed', 'expired', 'underpaid', 'overdue', 'authorized', 'cancelled',
        'paid', 'captured', 'overpaid', 'partially_refunded', 'refunded', 'charged_back'))
);

CREATE INDEX payments_next_check_at ON payments (next_check_at) WHERE next_check_at IS NOT NULL;
CREATE INDEX payments_provider_ref ON payments (provider, account, provider_ref)
    WHERE provider_ref IS NOT NULL;
-- GET /v1/payments: newest first (created_at, id), every filter optional.
CREATE INDEX payments_created ON payments (created_at DESC, id DESC);
CREATE INDEX payments_status_created ON payments (status, created_at DESC, id DESC);
CREATE INDEX payments_account_created ON payments (provider, account, created_at DESC, id DESC);
CREATE INDEX payments_updated ON payments (updated_at DESC, id DESC);
CREATE INDEX payments_anomaly_created ON payments (created_at DESC, id DESC)
    WHERE anomaly IS NOT NULL;
CREATE INDEX payments_late_created ON payments (created_at DESC, id DESC) WHERE late;
CREATE INDEX payments_merchant_ref_prefix ON payments (merchant_ref text_pattern_ops);
CREATE INDEX payments_provider_ref_prefix ON payments (provider_ref text_pattern_ops)
    WHERE provider_ref IS NOT NULL;

CREATE TABLE inbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key   text        NOT NULL,
    payment_id  bigint      NOT NULL REFERENCES payments (id),
    message_id  text        NOT NULL,
    source      text        NOT NULL,
    kind        text        NOT NULL,
    received_at timestamptz NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    raw         bytea       NOT NULL,
    observation jsonb       NOT NULL,
    outcome     text        NOT NULL,
    -- Every receipt of a fact is a row, with what it did (paysync/state/decision.py): a
    -- report of a known fact that changed nothing is 'duplicate'; the payment row is the
    -- fold of all of them. 'hint': a verified return URL, asking for a poll; never folded.
    CONSTRAINT inbox_receipt UNIQUE (dedup_key, message_id),
    CONSTRAINT inbox_outcome_known
        CHECK (outcome IN ('applied', 'stale', 'duplicate', 'anomaly', 'hint'))
);

CREATE INDEX inbox_payment_id ON inbox (payment_id, id);
CREATE INDEX inbox_dedup_key ON inbox (dedup_key);
CREATE INDEX inbox_applied_at ON inbox (applied_at);

CREATE TABLE transitions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payment_id  bigint      NOT NULL REFERENCES payments (id),
    seq         integer     NOT NULL,
    from_status text,
    to_status   text        NOT NULL,
    source      text        NOT NULL,
    inbox_id    bigint      REFERENCES inbox (id),
    at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transitions_payment_seq UNIQUE (payment_id, seq)
);

CREATE INDEX transitions_at ON transitions (at);

CREATE TABLE outbox (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL,
    payment_id   bigint      NOT NULL REFERENCES payments (id),
    seq          integer     NOT NULL,
    routing_key  text        NOT NULL,
    -- json, not jsonb: the relay publishes these exact bytes.
    body         json        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    CONSTRAINT outbox_event_id UNIQUE (event_id)
);

CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_payment_seq ON outbox (payment_id, seq);
CREATE INDEX outbox_created ON outbox (created_at, id);

CREATE TABLE reconcile_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trigger     text        NOT NULL,
    filters     jsonb       NOT NULL DEFAULT '{}',
    dry_run     boolean     NOT NULL DEFAULT false,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    checked     integer     NOT NULL DEFAULT 0,
    in_sync     integer     NOT NULL DEFAULT 0,
    drift       integer     NOT NULL DEFAULT 0,
    not_found   integer     NOT NULL DEFAULT 0,
    failed      integer     NOT NULL DEFAULT 0,
    CONSTRAINT reconcile_runs_trigger_known CHECK (trigger IN ('schedule', 'operator'))
);

CREATE INDEX reconcile_runs_started ON reconcile_runs (started_at DESC, id DESC);

-- A run's drift table: its checks that were not in sync (in-sync ones are only counted).
CREATE TABLE reconcile_checks (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id          bigint      NOT NULL REFERENCES reconcile_runs (id),
    payment_id      bigint      NOT NULL REFERENCES payments (id),
    our_status      text,
    provider_status text,
    their_status    text,
    outcome         text        NOT NULL,
    action          text        NOT NULL,
    error           text,
    checked_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reconcile_checks_outcome_known
        CHECK (outcome IN ('drift', 'not_found', 'failed'))
);

CREATE INDEX reconcile_checks_run ON reconcile_checks (run_id, id);

-- Hosted checkouts paysync created (POST /v1/checkouts): ingest's idempotency records.
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
