import { useEffect, useState } from 'react'
import { api, type Privacy, type PrivacyChange } from '../api/client'
import type { Session } from '../auth/session'
import { describeError } from '../ui/errors'

type Pending = Awaited<ReturnType<typeof api.requestAccountDeletion>>

/** "Export my data", the analytics and tips opt-outs, and "Delete my account" (with its
 * confirmation step): docs/data-rights.md. */
export function AccountData({ session, onDeleted }: { session: Session; onDeleted: () => void }) {
  const [error, setError] = useState<string | null>(null)
  const [pending, setPending] = useState<Pending | null>(null)
  const [busy, setBusy] = useState(false)
  // Unknown until the server answers: no box is shown in a state the user did not choose.
  const [privacy, setPrivacy] = useState<Privacy | null>(null)

  useEffect(() => {
    api
      .privacy(session.token)
      .then(setPrivacy)
      .catch((cause: unknown) => setError(describeError(cause)))
  }, [session.token])

  async function run(action: () => Promise<void>) {
    setError(null)
    setBusy(true)
    try {
      await action()
    } catch (cause) {
      setError(describeError(cause))
    } finally {
      setBusy(false)
    }
  }

  const exportData = () =>
    run(async () => {
      const archive = await api.exportMyData(session.token)
      const url = URL.createObjectURL(archive)
      const link = document.createElement('a')
      link.href = url
      link.download = `dojo-export-${session.me.id}.tar.gz`
      link.click()
      URL.revokeObjectURL(url)
    })

  // Shown at once (a controlled checkbox would otherwise snap back until the server answers),
  // then set to what the server stored; put back if it refused.
  const change = (next: PrivacyChange) => {
    const before = privacy
    if (privacy)
      setPrivacy({
        analyticsOptOut: next.analyticsOptOut ?? privacy.analyticsOptOut,
        tipsOptOut: next.tipsOptOut ?? privacy.tipsOptOut,
      })
    return run(async () => {
      try {
        setPrivacy(await api.setPrivacy(session.token, next))
      } catch (cause) {
        setPrivacy(before)
        throw cause
      }
    })
  }

  const askToDelete = () => run(async () => setPending(await api.requestAccountDeletion(session.token)))

  const confirmDelete = () =>
    run(async () => {
      if (!pending) return
      await api.deleteMe(session.token, pending.confirm)
      onDeleted()
    })

  return (
    <section className="account-data" data-testid="account-data">
      <button onClick={exportData} disabled={busy}>
        Export my data
      </button>
      <label className="privacy-toggle">
        <input
          type="checkbox"
          checked={privacy?.analyticsOptOut ?? false}
          disabled={busy || privacy === null}
          onChange={(e) => void change({ analyticsOptOut: e.target.checked })}
        />
        Opt out of optional analytics
      </label>
      <label className="privacy-toggle">
        <input
          type="checkbox"
          checked={privacy ? !privacy.tipsOptOut : false}
          disabled={busy || privacy === null}
          onChange={(e) => void change({ tipsOptOut: !e.target.checked })}
        />
        Send me tips when I have been away
      </label>
      <button className="danger" onClick={askToDelete} disabled={busy}>
        Delete my account
      </button>
      {pending && (
        <div role="alertdialog" aria-label="Confirm account deletion" data-testid="delete-confirm">
          <p>
            This deletes {pending.summary.workflowsDeleted} workflow(s) with their documents, {pending.summary.runs}{' '}
            run(s), {pending.summary.assets} asset(s) and {pending.summary.teamMemberships} team membership(s);{' '}
            {pending.summary.creditsForfeited} credits are given up. The ledger and audit log keep anonymised entries.
          </p>
          <button className="danger" onClick={confirmDelete} disabled={busy}>
            Delete everything
          </button>
          <button onClick={() => setPending(null)} disabled={busy}>
            Cancel
          </button>
        </div>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </section>
  )
}
