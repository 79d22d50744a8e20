// The natural-language builder: "prompt, flux image, then upscale" becomes connected nodes.
// The server plans (POST /api/rooms/{room}/compose); the nodes arrive as an ordinary document
// update, so every collaborator sees them appear.
import { useState, type FormEvent } from 'react'
import { api, type ComposeResult } from '../api/client'
import { ApiError } from '../api/http'
import { describeError } from '../ui/errors'

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

/** What the dock says after a plan: what was added, who planned it, and why the model did not. */
export function composeSummary(result: ComposeResult): string {
  const added = `Added ${plural(result.nodes.length, 'node')} and ${plural(result.edges.length, 'wire')}`
  if (result.planner === 'llm') return `${added}, planned by the language model.`
  if (result.fallback) return `${added}, planned by the built-in parser (the language model was not used: ${result.fallback}).`
  return `${added}, planned by the built-in parser.`
}

interface Props {
  room: string
  token: string | null
  disabled: boolean
  onComposed: (nodeIds: string[]) => void
}

export function ComposeDock({ room, token, disabled, onComposed }: Props) {
  const [open, setOpen] = useState(true)
  const [text, setText] = useState('')
  const [busy, setBusy] = useState(false)
  const [message, setMessage] = useState<string | null>(null)

  async function submit(event: FormEvent) {
    event.preventDefault()
    setBusy(true)
    setMessage(null)
    try {
      const result = await api.compose(token, room, text.trim())
      setMessage(composeSummary(result))
      setText('')
      onComposed(result.nodes)
    } catch (error) {
      if (error instanceof ApiError && error.routeMissing) {
        setMessage('This server does not offer the natural-language builder yet (POST /api/rooms/{room}/compose answered 404).')
      } else {
        setMessage(describeError(error))
      }
    } finally {
      setBusy(false)
    }
  }

  return (
    <section className={`compose-dock${open ? ' open' : ''}`} aria-label="Describe a graph" data-testid="compose-dock">
      <button className="dock-toggle" onClick={() => setOpen(!open)} aria-expanded={open}>
        {open ? '▾' : '▴'} Describe a graph
      </button>
      {open && (
        <form onSubmit={(e) => void submit(e)}>
          <input
            aria-label="Describe the nodes to add"
            placeholder="e.g. prompt, flux image, then upscale"
            value={text}
            disabled={disabled || busy}
            onChange={(e) => setText(e.target.value)}
          />
          <button type="submit" disabled={disabled || busy || text.trim() === ''}>
            {busy ? 'Building…' : 'Build'}
          </button>
          {message && (
            <span className="dock-message" role="status" data-testid="compose-message">
              {message}
            </span>
          )}
        </form>
      )}
    </section>
  )
}
