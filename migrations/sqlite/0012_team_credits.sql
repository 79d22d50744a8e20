-- Same schema and semantics as migrations/postgres/0012_team_credits.sql (the comments there
-- say why); dialect only differs: INTEGER for BIGINT.

ALTER TABLE teams ADD COLUMN credits INTEGER NOT NULL DEFAULT 0 CHECK (credits >= 0);

ALTER TABLE credit_ledger ADD COLUMN team_id TEXT;

CREATE INDEX credit_ledger_team ON credit_ledger (team_id, id DESC) WHERE team_id IS NOT NULL;

ALTER TABLE runs ADD COLUMN billed_team_id TEXT;

CREATE INDEX runs_billed_team ON runs (billed_team_id, user_id, created_at) WHERE billed_team_id IS NOT NULL;

ALTER TABLE team_members ADD COLUMN spending_limit INTEGER CHECK (spending_limit IS NULL OR spending_limit >= 0);
