-- Data rights (issue 22): a per-user analytics opt-out, the pending confirmations of account
-- deletions, and the one change the append-only ledger and audit log now accept: replacing a
-- deleted user's id with their pseudonym (`deleted-…`). Owned by dojo-records
-- (`DataRightsStore`). See the PostgreSQL file for the rules; SQLite has no CREATE OR REPLACE
-- TRIGGER, so the two UPDATE triggers are dropped and created again with a WHEN clause, in this
-- migration's transaction (allow-listed in contract-allowed.txt: the rule refuses less, never
-- more).

ALTER TABLE users ADD COLUMN analytics_opt_out INTEGER NOT NULL DEFAULT 0
    CHECK (analytics_opt_out IN (0, 1));

CREATE TABLE account_deletions (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

DROP TRIGGER credit_ledger_no_update;

CREATE TRIGGER credit_ledger_no_update BEFORE UPDATE ON credit_ledger
WHEN NOT (
    NEW.id = OLD.id AND NEW.amount = OLD.amount AND NEW.balance_after = OLD.balance_after
    AND NEW.reason = OLD.reason
        AND NEW.idempotency_key = REPLACE(OLD.idempotency_key, OLD.user_id, NEW.user_id)
    AND NEW.created_at = OLD.created_at AND NEW.user_id LIKE 'deleted-%'
)
BEGIN
    SELECT RAISE(ABORT, 'credit_ledger is append-only');
END;

DROP TRIGGER audit_log_no_update;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
WHEN NOT (
    NEW.seq = OLD.seq AND NEW.actor_type = OLD.actor_type AND NEW.action = OLD.action
    AND NEW.target_type = OLD.target_type AND NEW.team_id IS OLD.team_id
    AND NEW.created_at = OLD.created_at
    AND (NEW.actor_id LIKE 'deleted-%' OR NEW.target_id LIKE 'deleted-%' OR NEW.detail LIKE '%deleted-%')
)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
