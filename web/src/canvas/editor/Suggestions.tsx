// The workflow agent's suggestions (docs/agents.md), shown to the workflow's managers above the
// canvas: how many, the list on demand, and Dismiss (they stay hidden until the agent finds
// something different). Read once when the canvas opens: the agent reviews daily.
import { useEffect, useState } from 'react'
import { api } from '../../api/client'
import { describeError } from '../../ui/errors'

interface Suggestion {
  kind: string
  node: string
  message: string
  alternative?: string
}

interface Shown {
  summary: string
  suggestions: Suggestion[]
}

function asSuggestions(value: unknown): Suggestion[] {
  if (!Array.isArray(value)) return []
  return value.filter(
    (s): s is Suggestion => typeof s === 'object' && s !== null && typeof (s as Suggestion).message === 'string',
  )
}

export function Suggestions({ workflowId, token }: { workflowId: string; token: string | null }) {
  const [shown, setShown] = useState<Shown | null>(null)
  const [open, setOpen] = useState(false)
  const [error, setError] = useState<string | null>(null)

  useEffect(() => {
    let live = true
    api
      .workflowSuggestions(token, workflowId)
      .then((found) => {
        const suggestions = asSuggestions(found.suggestions)
        if (live && !found.dismissed && suggestions.length > 0) setShown({ summary: found.summary, suggestions })
      })
      // Not shown rather than an error: suggestions are a courtesy, and an older server has none.
      .catch(() => undefined)
    return () => {
      live = false
    }
  }, [token, workflowId])

  if (!shown) return null
  const dismiss = () => {
    api
      .dismissSuggestions(token, workflowId)
      .then(() => setShown(null))
      .catch((cause: unknown) => setError(describeError(cause)))
  }
  return (
    <div className="banner suggestions" role="status" data-testid="suggestions">
      The workflow agent has {shown.suggestions.length} suggestion{shown.suggestions.length === 1 ? '' : 's'} for this
      canvas.{' '}
      <button className="link" onClick={() => setOpen(!open)} data-testid="suggestions-toggle">
        {open ? 'hide' : 'show'}
      </button>{' '}
      <button className="link" onClick={dismiss} data-testid="suggestions-dismiss">
        dismiss
      </button>
      {error && <span className="error"> {error}</span>}
      {open && (
        <div data-testid="suggestions-list">
          {shown.summary && <p className="suggestions-summary">{shown.summary}</p>}
          <ul>
            {shown.suggestions.map((s, i) => (
              <li key={`${s.kind}-${s.node}-${i}`} data-kind={s.kind}>
                {s.message}
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  )
}
