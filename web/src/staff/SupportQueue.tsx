// The support queue for staff: tickets waiting for an answer, oldest first, each with the
// support agent's draft in an editable box; "Send answer" sends it as it stands. The asker sees
// only what is sent (docs/agents.md). Answered tickets are one filter away.
import { useCallback, useEffect, useState } from 'react'
import { api, type SupportTicket } from '../api/client'
import { describeError } from '../ui/errors'
import { navigate } from '../ui/router'
import { ago, checkAnswer, initialAnswer, staffTicketStatus, ticketStatuses, ticketsFor, type TicketFilter } from './staff'

/** While a shown ticket still waits for its draft, the queue is read again this often. */
const DRAFT_POLL_MS = 3_000

export function SupportQueue({ token }: { token: string | null }) {
  const [filter, setFilter] = useState<TicketFilter>('waiting')
  const [tickets, setTickets] = useState<SupportTicket[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)

  const load = useCallback(async () => {
    try {
      const lists = await Promise.all(ticketStatuses(filter).map((status) => api.supportQueue(token, status)))
      setTickets(ticketsFor(filter, lists.flatMap((list) => list.tickets)))
      setError(null)
    } catch (cause) {
      setError(describeError(cause))
    }
  }, [token, filter])

  useEffect(() => {
    setTickets(null)
    void load()
  }, [load])

  const drafting = tickets?.some((ticket) => ticket.status === 'open') ?? false
  useEffect(() => {
    if (!drafting) return
    const timer = setInterval(() => void load(), DRAFT_POLL_MS)
    return () => clearInterval(timer)
  }, [drafting, load])

  return (
    <section className="workflow-section" data-testid="support-queue">
      <div className="section-bar">
        <h2>Support queue</h2>
        <span className="spacer" />
        <select aria-label="Tickets to show" value={filter} onChange={(e) => setFilter(e.target.value as TicketFilter)}>
          <option value="waiting">Waiting for an answer</option>
          <option value="answered">Answered</option>
        </select>
        <button onClick={() => void load()}>Refresh</button>
      </div>
      {notice && (
        <p className="muted small" role="status" data-testid="support-notice">
          {notice}
        </p>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {tickets === null ? (
        <p className="muted">Loading tickets…</p>
      ) : tickets.length === 0 ? (
        <p className="muted small" data-testid="support-queue-empty">
          {filter === 'waiting' ? 'No ticket is waiting.' : 'No ticket was answered yet.'}
        </p>
      ) : (
        <ul className="staff-cards">
          {tickets.map((ticket) => (
            <TicketCard
              key={ticket.id}
              token={token}
              ticket={ticket}
              onAnswered={(answered) => {
                setNotice(`Answered “${answered.subject}”.`)
                void load()
              }}
            />
          ))}
        </ul>
      )}
    </section>
  )
}

interface CardProps {
  token: string | null
  ticket: SupportTicket
  onAnswered: (ticket: SupportTicket) => void
}

function TicketCard({ token, ticket, onAnswered }: CardProps) {
  const [text, setText] = useState(() => initialAnswer(ticket))
  const [edited, setEdited] = useState(false)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)

  // A draft that arrives while the card is shown fills the box, unless staff started writing.
  const draft = initialAnswer(ticket)
  useEffect(() => {
    if (!edited) setText(draft)
  }, [draft, edited])

  async function send() {
    const checked = checkAnswer(text)
    if ('problem' in checked) {
      setError(checked.problem)
      return
    }
    setBusy(true)
    setError(null)
    try {
      onAnswered(await api.answerSupportTicket(token, ticket.id, checked.answer))
    } catch (cause) {
      setError(describeError(cause))
      setBusy(false)
    }
  }

  return (
    <li className="staff-card" data-testid="staff-ticket" data-ticket-id={ticket.id} data-status={ticket.status}>
      <div className="staff-card-head">
        <strong data-testid="staff-ticket-subject">{ticket.subject}</strong>
        <span className="badge">{staffTicketStatus(ticket)}</span>
        <span className="spacer" />
        <span className="muted small" title={new Date(ticket.createdAt).toLocaleString()}>
          {ago(ticket.createdAt, Date.now())}
        </span>
      </div>
      <p className="muted small">
        From <code data-testid="staff-ticket-user">{ticket.userId ?? 'unknown'}</code>
        {ticket.room ? (
          <>
            {' · '}
            <AttachedCanvas token={token} room={ticket.room} />
          </>
        ) : (
          ' · no canvas attached'
        )}
      </p>
      <p className="staff-text" data-testid="staff-ticket-body">
        {ticket.body}
      </p>
      {ticket.status === 'answered' ? (
        <div>
          <p className="muted small">
            Answered{ticket.answeredBy ? <> by <code>{ticket.answeredBy}</code></> : null}
            {ticket.answeredAt ? ` ${ago(ticket.answeredAt, Date.now())}` : ''}
          </p>
          <p className="staff-text" data-testid="staff-ticket-answer">
            {ticket.answer}
          </p>
        </div>
      ) : (
        <form
          className="support-form"
          onSubmit={(e) => {
            e.preventDefault()
            void send()
          }}
        >
          <textarea
            aria-label={`Answer to ${ticket.subject}`}
            data-testid="staff-ticket-draft"
            placeholder={ticket.status === 'open' ? 'The support agent is drafting; or write the answer yourself.' : 'The answer'}
            rows={6}
            value={text}
            disabled={busy}
            onChange={(e) => {
              setText(e.target.value)
              setEdited(true)
            }}
          />
          <div className="inline-form">
            <button type="submit" className="primary" disabled={busy || !text.trim()}>
              Send answer
            </button>
            {edited && draft && text !== draft && (
              <button
                type="button"
                disabled={busy}
                onClick={() => {
                  setText(draft)
                  setEdited(false)
                }}
              >
                Back to the draft
              </button>
            )}
            <span className="muted small">The asker sees only what you send.</span>
          </div>
          {error && (
            <p className="error" role="alert" data-testid="staff-ticket-error">
              {error}
            </p>
          )}
        </form>
      )}
    </li>
  )
}

type Canvas = { kind: 'loading' } | { kind: 'readable'; id: string; title: string } | { kind: 'closed' }

/**
 * The ticket's canvas: a link when staff can read it (rooms of canvases made in the editor are
 * named after their workflow), otherwise its room name. Staff have no access of their own to
 * users' canvases; the asker can share it.
 */
function AttachedCanvas({ token, room }: { token: string | null; room: string }) {
  const [canvas, setCanvas] = useState<Canvas>({ kind: 'loading' })

  useEffect(() => {
    let live = true
    api
      .workflow(token, room)
      .then((workflow) => live && setCanvas({ kind: 'readable', id: workflow.id, title: workflow.title }))
      // Not found, not allowed, or the server unreachable: the room's name is all there is.
      .catch(() => live && setCanvas({ kind: 'closed' }))
    return () => {
      live = false
    }
  }, [token, room])

  if (canvas.kind === 'readable') {
    const href = `/w/${encodeURIComponent(canvas.id)}`
    return (
      <a
        href={href}
        data-testid="staff-ticket-canvas"
        onClick={(e) => {
          e.preventDefault()
          navigate(href)
        }}
      >
        Open canvas “{canvas.title}”
      </a>
    )
  }
  return (
    <span data-testid="staff-ticket-room">
      canvas <code>{room}</code>
      {canvas.kind === 'closed' && <span className="muted"> (not shared with you)</span>}
    </span>
  )
}
