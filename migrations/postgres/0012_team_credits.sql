-- Team credits (issue 22): a team balance kept in the same ledger as users', the account a run
-- was charged to, and per-member monthly spending limits. Owned by dojo-records
-- (`TeamStore`, `RunStore`). Expand-only: columns with a default or nullable, and indexes.

-- Never negative, as users.credits.
ALTER TABLE teams ADD COLUMN credits BIGINT NOT NULL DEFAULT 0 CHECK (credits >= 0);

-- A ledger entry with a team_id moves that team's balance (balance_after is the team's); its
-- user_id names the member it was on behalf of (who started the run, who paid, or the team's
-- first owner for an operator's grant), so that account deletion pseudonymises it like the
-- member's own entries. No foreign key: the ledger outlives a deleted team, as the audit log.
ALTER TABLE credit_ledger ADD COLUMN team_id TEXT;

CREATE INDEX credit_ledger_team ON credit_ledger (team_id, id DESC) WHERE team_id IS NOT NULL;

-- The team whose balance a run's holds were taken from (NULL: the user's). Set at submission
-- only: runs accepted before this migration keep settling against the user they held from,
-- even when runs.team_id names a team.
ALTER TABLE runs ADD COLUMN billed_team_id TEXT;

-- A member's spend this month: their runs billed to the team, since the start of the month.
CREATE INDEX runs_billed_team ON runs (billed_team_id, user_id, created_at) WHERE billed_team_id IS NOT NULL;

-- Credits a member may spend from the team's balance per calendar month (UTC); NULL: no limit.
ALTER TABLE team_members ADD COLUMN spending_limit BIGINT CHECK (spending_limit IS NULL OR spending_limit >= 0);
