-- 0005: what operators search and read. Indexes for GET /v1/payments (newest first, by
-- created_at then id; every filter is optional), and the drift table of each reconcile
-- run: the checks that were not in sync (in-sync ones are only counted in reconcile_runs).

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
CREATE INDEX reconcile_runs_started ON reconcile_runs (started_at DESC, id DESC);
CREATE INDEX transitions_at ON transitions (at);
CREATE INDEX inbox_applied_at ON inbox (applied_at);
CREATE INDEX outbox_payment_seq ON outbox (payment_id, seq);
CREATE INDEX outbox_created ON outbox (created_at, id);
