// "Publish as app" from the canvas (docs/apps.md): the owner picks which parameters runners fill
// in and which outputs they see, among the nodes on the canvas, and gets the form's link. The
// server takes a snapshot of the graph as it is now; later edits need a new publish.
import { useEffect, useMemo, useState } from 'react'
import { api, type PublishedApp } from '../api/client'
import type { CatalogIndex } from '../catalog/catalog'
import type { FlowNode } from '../doc/binding'
import { describeError } from '../ui/errors'
import { appLink, choiceKey, initialChoices, type Choice } from './publishChoices'

interface Props {
  workflowId: string
  workflowTitle: string
  /** Whether the workflow is a team's (`team` visibility needs it). */
  inTeam: boolean
  nodes: FlowNode[]
  titles: ReadonlyMap<string, string>
  catalog: CatalogIndex
  token: string | null
  onClose: () => void
}

export function PublishAppDialog({ workflowId, workflowTitle, inTeam, nodes, titles, catalog, token, onClose }: Props) {
  const [published, setPublished] = useState<PublishedApp | null>(null)
  const [title, setTitle] = useState(workflowTitle)
  const [description, setDescription] = useState('')
  const [visibility, setVisibility] = useState<'link' | 'private' | 'team'>('link')
  const [inputs, setInputs] = useState<Map<string, Choice>>(new Map())
  const [outputs, setOutputs] = useState<Map<string, Choice>>(new Map())
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState<string | null>(null)

  // The app as published, if it is: its choices start the dialog.
  useEffect(() => {
    api
      .workflowApp(token, workflowId)
      .then((app) => {
        setPublished(app)
        setTitle(app.title)
        setDescription(app.description)
        setVisibility(app.visibility as 'link' | 'private' | 'team')
        const chosen = initialChoices(app)
        setInputs(chosen.inputs)
        setOutputs(chosen.outputs)
      })
      .catch(() => setPublished(null))
  }, [token, workflowId])

  const rows = useMemo(
    () =>
      nodes.map((node) => ({
        id: node.id,
        title: titles.get(node.id) ?? node.id,
        spec: catalog.spec(node.data.nodeType),
      })),
    [nodes, titles, catalog],
  )

  function toggle(map: Map<string, Choice>, set: (m: Map<string, Choice>) => void, choice: Choice, on: boolean) {
    const next = new Map(map)
    if (on) next.set(choiceKey(choice), choice)
    else next.delete(choiceKey(choice))
    set(next)
  }

  function relabel(map: Map<string, Choice>, set: (m: Map<string, Choice>) => void, key: string, label: string) {
    const choice = map.get(key)
    if (!choice) return
    set(new Map(map).set(key, { ...choice, label }))
  }

  async function publish() {
    setBusy(true)
    setError(null)
    try {
      const app = await api.publishApp(token, workflowId, {
        title,
        description,
        visibility,
        inputs: [...inputs.values()].map((c) => ({ node: c.node, param: c.name, label: c.label })),
        outputs: [...outputs.values()].map((c) => ({ node: c.node, output: c.name, label: c.label })),
      })
      setPublished(app)
    } catch (cause) {
      setError(describeError(cause))
    } finally {
      setBusy(false)
    }
  }

  async function unpublish() {
    setBusy(true)
    setError(null)
    try {
      await api.unpublishApp(token, workflowId)
      setPublished(null)
    } catch (cause) {
      setError(describeError(cause))
    } finally {
      setBusy(false)
    }
  }

  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div className="modal publish-app" role="dialog" aria-label="Publish as app" data-testid="publish-app-dialog" onClick={(e) => e.stopPropagation()}>
        <header className="dialog-header">
          <h2>Publish as app</h2>
          <button className="icon" aria-label="Close publishing" onClick={onClose}>
            ×
          </button>
        </header>
        <p className="small">
          People you let in fill in the inputs you choose and see the outputs you choose, with their own credits. They never see the canvas.
          The app runs the canvas as it is when you publish.
        </p>
        <input aria-label="App title" value={title} maxLength={120} onChange={(e) => setTitle(e.target.value)} disabled={busy} />
        <textarea aria-label="App description" placeholder="What it makes (optional)" value={description} maxLength={2000} rows={2} onChange={(e) => setDescription(e.target.value)} disabled={busy} />
        <label>
          Who may use it{' '}
          <select aria-label="Who may use it" value={visibility} onChange={(e) => setVisibility(e.target.value as 'link' | 'private' | 'team')} disabled={busy}>
            <option value="link">Anyone signed in with the link</option>
            <option value="private">People this canvas is shared with</option>
            {inTeam && <option value="team">Members of the team</option>}
          </select>
        </label>
        <div className="publish-app-nodes">
          {rows.map((row) => (
            <fieldset key={row.id} data-testid={`publish-node-${row.id}`}>
              <legend>{row.title}</legend>
              {row.spec?.params.map((param) => {
                const choice: Choice = { node: row.id, name: param.name, label: inputs.get(`${row.id}.${param.name}`)?.label ?? param.name }
                return (
                  <label key={`p-${param.name}`} className="publish-choice">
                    <input
                      type="checkbox"
                      data-testid={`app-input-${row.id}-${param.name}`}
                      checked={inputs.has(choiceKey(choice))}
                      onChange={(e) => toggle(inputs, setInputs, choice, e.target.checked)}
                      disabled={busy}
                    />
                    Ask for {param.name}
                    {inputs.has(choiceKey(choice)) && (
                      <input
                        className="publish-label"
                        aria-label={`Label of ${row.title} ${param.name}`}
                        value={choice.label}
                        maxLength={80}
                        onChange={(e) => relabel(inputs, setInputs, choiceKey(choice), e.target.value)}
                        disabled={busy}
                      />
                    )}
                  </label>
                )
              })}
              {row.spec?.outputs.map((output) => {
                const choice: Choice = { node: row.id, name: output.name, label: outputs.get(`${row.id}.${output.name}`)?.label ?? row.title }
                return (
                  <label key={`o-${output.name}`} className="publish-choice">
                    <input
                      type="checkbox"
                      data-testid={`app-output-${row.id}-${output.name}`}
                      checked={outputs.has(choiceKey(choice))}
                      onChange={(e) => toggle(outputs, setOutputs, choice, e.target.checked)}
                      disabled={busy}
                    />
                    Show its {output.name}
                    {outputs.has(choiceKey(choice)) && (
                      <input
                        className="publish-label"
                        aria-label={`Label of ${row.title} ${output.name} output`}
                        value={choice.label}
                        maxLength={80}
                        onChange={(e) => relabel(outputs, setOutputs, choiceKey(choice), e.target.value)}
                        disabled={busy}
                      />
                    )}
                  </label>
                )
              })}
            </fieldset>
          ))}
        </div>
        <div className="dialog-actions">
          <button onClick={() => void publish()} disabled={busy || !title.trim() || outputs.size === 0} data-testid="publish-app">
            {published ? 'Publish again' : 'Publish'}
          </button>
          {published && (
            <button onClick={() => void unpublish()} disabled={busy} data-testid="unpublish-app">
              Unpublish
            </button>
          )}
        </div>
        {published && (
          <p className="notice small" role="status">
            Published. The form:{' '}
            <a href={appLink(published.id)} data-testid="app-link">
              {window.location.origin}
              {appLink(published.id)}
            </a>
          </p>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
      </div>
    </div>
  )
}
