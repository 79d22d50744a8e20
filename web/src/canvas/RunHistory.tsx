// The room's runs, newest first: live from the document's `runs` map, completed from
// GET /api/rooms/{room}/runs (older runs, who started them) when the server has it.
import { useEffect, useState } from 'react'
import { api, type RunListItem } from '../api/client'
import { ApiError } from '../api/http'
import type { QueuePlace, RunSummary } from '../doc/schema'
import { credits } from '../ui/credits'
import { describeError } from '../ui/errors'

interface Props {
  room: string
  token: string | null
  live: RunSummary[]
  /** Queued runs' positions and estimated starts (from the document). */
  places: Map<string, QueuePlace>
  onCancel: (id: string) => void
  onMoveToFront: (id: string) => void
  onClose: () => void
}

function fromApi(item: RunListItem): RunSummary {
  return {
    id: item.id,
    status: item.status,
    estimate: item.estimate,
    charged: item.charged,
    createdAt: item.createdAt,
    finishedAt: item.finishedAt,
    userId: item.userId,
  }
}

export function RunHistory({ room, token, live, places, onCancel, onMoveToFront, onClose }: Props) {
  const [stored, setStored] = useState<RunSummary[]>([])
  const [note, setNote] = useState<string | null>(null)

  useEffect(() => {
    let cancelled = false
    api
      .runs(token, room)
      .then((body) => !cancelled && setStored(body.runs.map(fromApi)))
      .catch((error: unknown) => {
        if (cancelled) return
        setNote(
          error instanceof ApiError && error.routeMissing
            ? 'The server has no run history API yet; showing runs recorded in the document.'
            : describeError(error),
        )
      })
    return () => {
      cancelled = true
    }
  }, [room, token, live.length])

  const merged = new Map<string, RunSummary>()
  for (const run of stored) merged.set(run.id, run)
  for (const run of live) merged.set(run.id, { ...merged.get(run.id), ...run })
  const runs = [...merged.values()].sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0))

  return (
    <aside className="run-history" aria-label="Run history" data-testid="run-history">
      <header>
        <h2>Runs</h2>
        <button className="icon" aria-label="Close run history" onClick={onClose}>
          ×
        </button>
      </header>
      {note && <p className="muted small">{note}</p>}
      {runs.length === 0 && <p className="muted">No runs yet.</p>}
      <ol>
        {runs.map((run) => (
          <li key={run.id} data-testid="run-row" data-status={run.status}>
            <span className={`badge status-${run.status}`}>{run.status}</span>
            <span className="small">{run.createdAt ? new Date(run.createdAt).toLocaleTimeString() : ''}</span>
            <span className="small muted">
              {run.charged != null ? `${credits(run.charged)} charged` : run.estimate != null ? `≤ ${credits(run.estimate)}` : ''}
            </span>
            <code className="small muted" title={run.id}>
              {run.id.slice(0, 8)}
            </code>
            {run.status === 'queued' && <QueueControls id={run.id} place={places.get(run.id)} onCancel={onCancel} onMoveToFront={onMoveToFront} />}
          </li>
        ))}
      </ol>
    </aside>
  )
}

/** A queued run's place in the queue, with Cancel and Move to front. */
function QueueControls(props: { id: string; place: QueuePlace | undefined; onCancel: (id: string) => void; onMoveToFront: (id: string) => void }) {
  const { id, place } = props
  const starts = place?.estimatedStartAt != null ? ` · starts ~${new Date(place.estimatedStartAt).toLocaleTimeString()}` : ''
  return (
    <span className="queue-controls" data-testid="queue-place">
      {place && <span className="small">{`#${place.position} in queue${starts}`}</span>}
      <button className="small" onClick={() => props.onMoveToFront(id)} title="Run this before your other queued runs">
        Move to front
      </button>
      <button className="small" onClick={() => props.onCancel(id)}>
        Cancel
      </button>
    </span>
  )
}
