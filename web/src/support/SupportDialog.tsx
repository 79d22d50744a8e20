// "Ask for help" from the canvas: the user writes what is wrong, with this canvas attached (the
// support agent reads what failed in its recent runs), and reads their tickets. Only the answer
// staff approved is ever shown; the agent's draft stays with staff (docs/agents.md).
import { useCallback, useEffect, useState } from 'react'
import { api, type SupportTicket } from '../api/client'
import { describeError } from '../ui/errors'
import { ticketStatusLabel } from './tickets'

interface Props {
  token: string | null
  /** The canvas's room, offered as the attachment. */
  room: string
  onClose: () => void
}

export function SupportDialog({ token, room, onClose }: Props) {
  const [tickets, setTickets] = useState<SupportTicket[]>([])
  const [subject, setSubject] = useState('')
  const [body, setBody] = useState('')
  const [attach, setAttach] = useState(true)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)
  const [sent, setSent] = useState(false)

  const load = useCallback(async () => setTickets((await api.mySupportTickets(token)).tickets), [token])

  useEffect(() => {
    load().catch((cause: unknown) => setError(describeError(cause)))
  }, [load])

  async function submit(event: React.FormEvent) {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      await api.openSupportTicket(token, subject, body, attach ? room : undefined)
      setSubject('')
      setBody('')
      setSent(true)
      await load()
    } catch (cause) {
      setError(describeError(cause))
    } finally {
      setBusy(false)
    }
  }

  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div className="modal support-dialog" role="dialog" aria-label="Ask for help" data-testid="support-dialog" onClick={(e) => e.stopPropagation()}>
        <header className="dialog-header">
          <h2>Ask for help</h2>
          <button className="icon" aria-label="Close help" onClick={onClose}>
            ×
          </button>
        </header>
        <form onSubmit={(e) => void submit(e)} className="support-form">
          <input aria-label="Subject" placeholder="What is wrong, in a line" value={subject} maxLength={200} onChange={(e) => setSubject(e.target.value)} disabled={busy} />
          <textarea aria-label="Describe the problem" placeholder="What you did, what you expected" value={body} maxLength={5000} rows={4} onChange={(e) => setBody(e.target.value)} disabled={busy} />
          <label className="privacy-toggle">
            <input type="checkbox" checked={attach} onChange={(e) => setAttach(e.target.checked)} disabled={busy} />
            Attach this canvas (we look at what failed in its recent runs)
          </label>
          <button type="submit" disabled={busy || !subject.trim() || !body.trim()}>
            Send
          </button>
        </form>
        {sent && (
          <p className="notice small" role="status" data-testid="support-sent">
            Sent. Our team reviews every answer; it appears here.
          </p>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <ul className="support-tickets" data-testid="support-tickets">
          {tickets.map((ticket) => (
            <li key={ticket.id} data-testid="support-ticket" data-status={ticket.status}>
              <strong>{ticket.subject}</strong> <span className="muted small">{ticketStatusLabel(ticket.status)}</span>
              {ticket.answer && (
                <p className="support-answer" data-testid="support-answer">
                  {ticket.answer}
                </p>
              )}
            </li>
          ))}
        </ul>
      </div>
    </div>
  )
}
