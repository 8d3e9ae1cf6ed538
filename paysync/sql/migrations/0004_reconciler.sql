-- 0004: the reconciler. Every payment is first checked a minute after paysync hears of it
-- (then on the ladder the reconciler keeps); operator and scheduled rounds are recorded.

ALTER TABLE payments ALTER COLUMN next_check_at SET DEFAULT now() + interval '1 minute';
UPDATE payments SET next_check_at = now() WHERE next_check_at IS NULL;

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
