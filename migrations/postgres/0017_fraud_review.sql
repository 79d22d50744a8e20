-- The fraud agent (issue 23): what Stripe told us about payments, and the flags the agent
-- raises for staff review. A user with a flag that is `open` or `confirmed` cannot start a run
-- that costs credits. Owned by dojo-records (`FraudStore`). Expand-only: new tables.

-- One row per Stripe event about a payment, recorded once per event id (Stripe delivers at
-- least once). `user_id` is resolved from the charge's `metadata.user_id` or from the customer
-- a checkout of that user used; NULL when neither names one of our users (the event is kept:
-- its payment source still counts for the shared-source rule).
CREATE TABLE payment_events (
    event_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('paid', 'refunded', 'failed', 'disputed')),
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    customer TEXT,
    -- The charge (`ch_…`) the event is about: a dispute names only its charge.
    charge TEXT,
    -- The card's fingerprint (the same card has the same fingerprint across customers).
    source TEXT,
    -- In the currency's smallest unit, as Stripe sends it.
    amount BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX payment_events_user ON payment_events (user_id, created_at);
CREATE INDEX payment_events_charge ON payment_events (charge);
CREATE INDEX payment_events_source ON payment_events (source, created_at);

-- Which of our users a Stripe customer is: learnt from completed checkouts, so that later
-- charge events (refunds, failures, disputes) that carry only the customer find the user.
CREATE TABLE stripe_customers (
    customer TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

-- A rule's finding about one user, for staff: `open` until reviewed, then `cleared` (the user
-- may run again) or `confirmed` (stays blocked until cleared).
CREATE TABLE account_flags (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    rule TEXT NOT NULL,
    -- JSON: the evidence (counts, amounts, the other accounts of a shared source).
    detail TEXT NOT NULL,
    -- The newest event the evidence includes: a cleared flag is raised again only by newer.
    evidence_at BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'cleared', 'confirmed')),
    created_at BIGINT NOT NULL,
    reviewed_by TEXT,
    reviewed_at BIGINT,
    note TEXT
);

CREATE INDEX account_flags_user ON account_flags (user_id, status);
CREATE INDEX account_flags_status ON account_flags (status, created_at DESC);
-- At most one unreviewed flag per user and rule: a scan that finds it again changes nothing.
CREATE UNIQUE INDEX account_flags_one_open ON account_flags (user_id, rule) WHERE status = 'open';
