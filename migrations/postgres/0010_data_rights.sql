-- Data rights (issue 22): a per-user analytics opt-out, the pending confirmations of account
-- deletions, and the one change the append-only ledger and audit log now accept: replacing a
-- deleted user's id with their pseudonym (`deleted-…`). Owned by dojo-records
-- (`DataRightsStore`). Expand-only: a column with a default, a table, and append-only rules
-- that refuse less than before (the previous release never updates either table).

ALTER TABLE users ADD COLUMN analytics_opt_out INTEGER NOT NULL DEFAULT 0
    CHECK (analytics_opt_out IN (0, 1));

CREATE TABLE account_deletions (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    -- Hex SHA-256 of the confirmation token: the token itself is only ever in the answer that
    -- handed it out, so reading this table cannot confirm anyone's deletion.
    token_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A ledger row may change in one way only: its user id becomes a deleted user's pseudonym,
-- there and inside its idempotency key (`admin:{user}:…`). Amounts, balances, reasons and
-- times stay as written (accounting law keeps them).
CREATE OR REPLACE FUNCTION credit_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND NEW.id = OLD.id AND NEW.amount = OLD.amount AND NEW.balance_after = OLD.balance_after
        AND NEW.reason = OLD.reason
        AND NEW.idempotency_key = REPLACE(OLD.idempotency_key, OLD.user_id, NEW.user_id)
        AND NEW.created_at = OLD.created_at AND NEW.user_id LIKE 'deleted-%' THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'credit_ledger is append-only';
END;
$$;

-- An audit entry may change only to anonymise it: what happened, to which kind of thing, in
-- which team and when stay as written, and the new row names a deleted user's pseudonym.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND NEW.seq = OLD.seq AND NEW.actor_type = OLD.actor_type AND NEW.action = OLD.action
        AND NEW.target_type = OLD.target_type AND NEW.team_id IS NOT DISTINCT FROM OLD.team_id
        AND NEW.created_at = OLD.created_at
        AND (NEW.actor_id LIKE 'deleted-%' OR NEW.target_id LIKE 'deleted-%' OR NEW.detail LIKE '%deleted-%') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
