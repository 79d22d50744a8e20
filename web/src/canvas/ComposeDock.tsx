// The natural-language builder: "prompt, flux image, then upscale" becomes connected nodes.
// The server only plans (POST /api/rooms/{room}/compose?apply=false answers the graph edit);
// this editor applies the edit itself, in one local transaction, so its Undo takes the whole
// composition back in one step, and collaborators see the nodes appear as with any edit.
import { useState, type FormEvent } from 'react'
import { api, type ComposeResult } from '../api/client'
import type { EditOp } from '../doc/edits'
import { ApiError } from '../api/http'
import { describeError } from '../ui/errors'

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

type Summarised = Pick<ComposeResult, 'nodes' | 'edges' | 'planner' | 'fallback'> &
  Partial<Pick<ComposeResult, 'substitutions'>>

/**
 * What the dock says after a plan: what was added, who planned it, why the model did not, and
 * which named nodes cannot run on this server and what was used instead (`nameOf` turns a node
 * type into its display name).
 */
export function composeSummary(result: Summarised, nameOf: (type: string) => string = (type) => type): string {
  const added = `Added ${plural(result.nodes.length, 'node')} and ${plural(result.edges.length, 'wire')}`
  const planned =
    result.planner === 'llm'
      ? `${added}, planned by the language model.`
      : result.fallback
        ? `${added}, planned by the built-in parser (the language model was not used: ${result.fallback}).`
        : `${added}, planned by the built-in parser.`
  const swaps = (result.substitutions ?? []).map(
    (s) => ` Used ${nameOf(s.used)} instead of ${nameOf(s.asked)}: ${s.reason}.`,
  )
  return planned + swaps.join('')
}

interface Props {
  room: string
  token: string | null
  disabled: boolean
  /** Applies the planned edit to the document as one undoable step. */
  applyOps: (ops: EditOp[]) => void
  onComposed: (nodeIds: string[]) => void
  /** A node type's display name. */
  nameOf: (type: string) => string
}

export function ComposeDock({ room, token, disabled, applyOps, onComposed, nameOf }: Props) {
  const [open, setOpen] = useState(true)
  const [text, setText] = useState('')
  const [busy, setBusy] = useState(false)
  const [message, setMessage] = useState<string | null>(null)

  async function submit(event: FormEvent) {
    event.preventDefault()
    setBusy(true)
    setMessage(null)
    try {
      const result = await api.compose(token, room, text.trim(), false)
      // Only planned: apply here. (A server without plan mode ignores `apply=false`, adds the
      // nodes itself and sends no ops; they arrive as a remote update, outside this Undo.)
      if (result.ops && !result.editId) applyOps(result.ops)
      setMessage(composeSummary(result, nameOf))
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
