// The accounts the fraud agent flagged, grouped by account: each flag's rule and evidence, and
// staff's verdict with an optional note. Clearing lifts the flag's block on paid runs;
// confirming keeps it until someone clears it (docs/agents.md, "The fraud agent").
import { useCallback, useEffect, useState } from 'react'
import { api, type FraudFlag } from '../api/client'
import { describeError } from '../ui/errors'
import { ago, describeEvidence, groupFlags, ruleLabel, verdictsFor, type FlaggedAccount, type FlagFilter } from './staff'

const FILTERS: { value: FlagFilter; label: string }[] = [
  { value: 'open', label: 'Open (paid runs blocked)' },
  { value: 'confirmed', label: 'Confirmed (still blocked)' },
  { value: 'cleared', label: 'Cleared' },
]

export function FlaggedAccounts({ token }: { token: string | null }) {
  const [filter, setFilter] = useState<FlagFilter>('open')
  const [accounts, setAccounts] = useState<FlaggedAccount[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)

  const load = useCallback(async () => {
    try {
      setAccounts(groupFlags((await api.fraudFlags(token, filter)).flags))
      setError(null)
    } catch (cause) {
      setError(describeError(cause))
    }
  }, [token, filter])

  useEffect(() => {
    setAccounts(null)
    void load()
  }, [load])

  return (
    <section className="workflow-section" data-testid="flagged-accounts">
      <div className="section-bar">
        <h2>Flagged accounts</h2>
        <span className="spacer" />
        <select aria-label="Flags to show" value={filter} onChange={(e) => setFilter(e.target.value as FlagFilter)}>
          {FILTERS.map(({ value, label }) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
        <button onClick={() => void load()}>Refresh</button>
      </div>
      {notice && (
        <p className="muted small" role="status" data-testid="flag-notice">
          {notice}
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {accounts === null ? (
        <p className="muted">Loading flags…</p>
      ) : accounts.length === 0 ? (
        <p className="muted small" data-testid="flags-empty">
          No {filter} flags.
        </p>
      ) : (
        <ul className="staff-cards">
          {accounts.map((account) => (
            <li key={account.userId} className="staff-card" data-testid="flagged-account" data-user-id={account.userId}>
              <div className="staff-card-head">
                <code>{account.userId}</code>
                {account.rules.map((rule) => (
                  <span key={rule} className="badge">
                    {ruleLabel(rule)}
                  </span>
                ))}
                <span className="spacer" />
                <span className="muted small" title={new Date(account.latestEvidenceAt).toLocaleString()}>
                  latest evidence {ago(account.latestEvidenceAt, Date.now())}
                </span>
              </div>
              {account.flags.map((flag) => (
                <FlagReview
                  key={flag.id}
                  token={token}
                  flag={flag}
                  onReviewed={(reviewed, blocked) => {
                    const verdict = reviewed.status === 'cleared' ? 'Cleared' : 'Confirmed'
                    const still = blocked ? 'their paid runs stay blocked' : 'their paid runs are allowed again'
                    setNotice(`${verdict} the ${ruleLabel(reviewed.rule).toLowerCase()} flag of ${reviewed.userId}: ${still}.`)
                    void load()
                  }}
                />
              ))}
            </li>
          ))}
        </ul>
      )}
    </section>
  )
}

interface ReviewProps {
  token: string | null
  flag: FraudFlag
  onReviewed: (flag: FraudFlag, blocked: boolean) => void
}

function FlagReview({ token, flag, onReviewed }: ReviewProps) {
  const [note, setNote] = useState('')
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const verdicts = verdictsFor(flag.status)

  async function review(verdict: 'cleared' | 'confirmed') {
    setBusy(true)
    setError(null)
    try {
      const reviewed = await api.reviewFraudFlag(token, flag.id, verdict, note.trim() || undefined)
      onReviewed(reviewed.flag, reviewed.blocked)
    } catch (cause) {
      setError(describeError(cause))
      setBusy(false)
    }
  }

  return (
    <div className="staff-flag" data-testid="fraud-flag" data-flag-id={flag.id} data-rule={flag.rule} data-status={flag.status}>
      <p className="small">
        <strong>{ruleLabel(flag.rule)}</strong> <span className="muted">· {flag.status} · raised {ago(flag.createdAt, Date.now())}</span>
      </p>
      <ul className="small" data-testid="fraud-evidence">
        {describeEvidence(flag.rule, flag.detail).map((line) => (
          <li key={line}>{line}</li>
        ))}
      </ul>
      {flag.reviewedBy && (
        <p className="muted small">
          Reviewed by <code>{flag.reviewedBy}</code>
          {flag.reviewedAt ? ` ${ago(flag.reviewedAt, Date.now())}` : ''}
          {flag.note ? `: “${flag.note}”` : ''}
        </p>
      )}
      {verdicts.length > 0 && (
        <div className="inline-form">
          <input
            aria-label={`Note on the ${ruleLabel(flag.rule).toLowerCase()} flag`}
            placeholder="Note for the next reviewer (optional)"
            value={note}
            maxLength={2000}
            disabled={busy}
            onChange={(e) => setNote(e.target.value)}
          />
          {verdicts.includes('cleared') && (
            <button disabled={busy} onClick={() => void review('cleared')}>
              Clear
            </button>
          )}
          {verdicts.includes('confirmed') && (
            <button className="danger" disabled={busy} onClick={() => void review('confirmed')}>
              Confirm
            </button>
          )}
        </div>
      )}
      {error && (
        <p className="error" role="alert" data-testid="flag-error">
          {error}
        </p>
      )}
    </div>
  )
}
