// A team's audit log for its owners and admins: newest first, filtered by action or actor,
// older pages on demand, and the whole (filtered) log saved as JSON lines.
import { useCallback, useEffect, useState } from 'react'
import { api, type AuditEntry, type AuditFilter } from '../api/client'
import { describeError } from '../ui/errors'
import { describeAuditEntry } from './roles'

interface Props {
  token: string | null
  teamId: string
}

export function AuditLog({ token, teamId }: Props) {
  const [entries, setEntries] = useState<AuditEntry[]>([])
  const [next, setNext] = useState<number | null>(null)
  const [action, setAction] = useState('')
  const [actor, setActor] = useState('')
  const [error, setError] = useState<string | null>(null)

  const filter = useCallback(
    (cursor?: number): AuditFilter => ({
      ...(action.trim() ? { action: action.trim() } : {}),
      ...(actor.trim() ? { actor: actor.trim() } : {}),
      ...(cursor !== undefined ? { cursor } : {}),
    }),
    [action, actor],
  )

  const load = useCallback(
    async (cursor?: number) => {
      setError(null)
      try {
        const page = await api.teamAudit(token, teamId, filter(cursor))
        setEntries((shown) => (cursor === undefined ? page.entries : [...shown, ...page.entries]))
        setNext(page.nextCursor ?? null)
      } catch (cause) {
        setError(describeError(cause))
      }
    },
    [token, teamId, filter],
  )

  useEffect(() => {
    void load()
    // Not on every keystroke of the filter: the form's Filter button reloads.
  }, [token, teamId]) // eslint-disable-line react-hooks/exhaustive-deps

  async function exportLines() {
    try {
      const text = await api.teamAuditExport(token, teamId, filter())
      const url = URL.createObjectURL(new Blob([text], { type: 'application/x-ndjson' }))
      const link = document.createElement('a')
      link.href = url
      link.download = `audit-${teamId}.jsonl`
      link.click()
      setTimeout(() => URL.revokeObjectURL(url), 10_000)
    } catch (cause) {
      setError(describeError(cause))
    }
  }

  return (
    <section className="workflow-section" data-testid="audit-log">
      <h2>Audit log</h2>
      <form
        className="invite-form"
        onSubmit={(e) => {
          e.preventDefault()
          void load()
        }}
      >
        <input aria-label="Filter by action" placeholder="Action, e.g. member.role_changed" value={action} onChange={(e) => setAction(e.target.value)} />
        <input aria-label="Filter by actor" placeholder="Actor id" value={actor} onChange={(e) => setActor(e.target.value)} />
        <button type="submit">Filter</button>
        <button type="button" onClick={() => void exportLines()}>
          Export JSON lines
        </button>
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      <ul className="collaborators">
        {entries.map((entry) => (
          <li key={entry.seq} data-testid="audit-entry" data-action={entry.action}>
            <span className="muted small">{new Date(entry.createdAt).toLocaleString()}</span>
            <code>{entry.actorId}</code>
            <span>{describeAuditEntry(entry)}</span>
          </li>
        ))}
        {entries.length === 0 && <li className="muted small">Nothing recorded{action || actor ? ' for this filter' : ''}.</li>}
      </ul>
      {next !== null && (
        <button onClick={() => void load(next)} data-testid="audit-older">
          Older entries
        </button>
      )}
    </section>
  )
}
