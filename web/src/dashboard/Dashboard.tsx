import { useCallback, useEffect, useState, type FormEvent } from 'react'
import { api, type Workflow } from '../api/client'
import type { Session } from '../auth/session'
import { roleLabel } from '../share/invitee'
import { describeError } from '../ui/errors'
import { navigate } from '../ui/router'
import type { Theme } from '../ui/theme'
import { AccountData } from './AccountData'
import { groupWorkflows } from './workflowGroups'

interface Props {
  session: Session
  onSignOut: () => void
  theme: Theme
  onToggleTheme: () => void
}

export function Dashboard({ session, onSignOut, theme, onToggleTheme }: Props) {
  const [workflows, setWorkflows] = useState<Workflow[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [title, setTitle] = useState('')

  const load = useCallback(async () => {
    try {
      setWorkflows(await api.workflows(session.token))
    } catch (cause) {
      setError(describeError(cause))
    }
  }, [session.token])

  useEffect(() => {
    void load()
  }, [load])

  async function act(action: () => Promise<unknown>) {
    setError(null)
    try {
      await action()
      await load()
    } catch (cause) {
      setError(describeError(cause))
    }
  }

  async function create(event: FormEvent) {
    event.preventDefault()
    setError(null)
    try {
      const workflow = await api.createWorkflow(session.token, title.trim() || 'Untitled workflow')
      navigate(`/w/${encodeURIComponent(workflow.id)}`)
    } catch (cause) {
      setError(describeError(cause))
    }
  }

  return (
    <main className="dashboard">
      <header className="topbar">
        <h1>Dojo</h1>
        <span className="spacer" />
        <span className="who" data-testid="me">
          {session.me.name ?? session.me.subject} · <span data-testid="credits">{session.me.credits}</span> credits
        </span>
        <button onClick={onToggleTheme} title="Switch theme">
          {theme === 'dark' ? 'Light' : 'Dark'} theme
        </button>
        <button onClick={onSignOut}>Sign out</button>
      </header>
      <AccountData session={session} onDeleted={onSignOut} />
      <p className="muted small">
        Your user id: <code data-testid="user-id">{session.me.id}</code> (give it to an owner who wants to share a workflow with you; they paste it in their canvas's Share dialog)
      </p>
      <form className="create" onSubmit={(e) => void create(e)}>
        <input
          name="title"
          aria-label="New workflow title"
          placeholder="New workflow title"
          value={title}
          onChange={(e) => setTitle(e.target.value)}
        />
        <button type="submit">Create workflow</button>
      </form>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {workflows === null ? (
        <p className="muted">Loading workflows…</p>
      ) : (
        <WorkflowLists workflows={workflows} myId={session.me.id} token={session.token} onAct={act} />
      )}
    </main>
  )
}

interface ListsProps {
  workflows: Workflow[]
  myId: string
  token: string | null
  onAct: (action: () => Promise<unknown>) => Promise<void>
}

/** Mine first; then, when there are any, those shared with me, each with its owner. */
function WorkflowLists({ workflows, myId, token, onAct }: ListsProps) {
  const { mine, sharedWithMe } = groupWorkflows(workflows, myId)
  return (
    <>
      <section className="workflow-section" data-testid="my-workflows">
        <h2>Your workflows</h2>
        {mine.length === 0 ? (
          <p className="muted">No workflows yet: create one above.</p>
        ) : (
          <ul className="workflows">
            {mine.map((workflow) => (
              <WorkflowRow key={workflow.id} workflow={workflow} onAct={onAct} token={token} />
            ))}
          </ul>
        )}
      </section>
      {sharedWithMe.length > 0 && (
        <section className="workflow-section" data-testid="shared-with-me">
          <h2>Shared with you</h2>
          <ul className="workflows">
            {sharedWithMe.map((workflow) => (
              <WorkflowRow key={workflow.id} workflow={workflow} onAct={onAct} token={token} />
            ))}
          </ul>
        </section>
      )}
    </>
  )
}

interface RowProps {
  workflow: Workflow
  token: string | null
  onAct: (action: () => Promise<unknown>) => Promise<void>
}

function WorkflowRow({ workflow, token, onAct }: RowProps) {
  const owner = workflow.permission === 'admin'
  function rename() {
    const title = window.prompt('New title', workflow.title)
    if (title && title.trim() !== workflow.title) void onAct(() => api.updateWorkflow(token, workflow.id, { title: title.trim() }))
  }
  function remove() {
    if (window.confirm(`Delete "${workflow.title}"? Its room stays closed afterwards.`)) {
      void onAct(() => api.deleteWorkflow(token, workflow.id))
    }
  }
  return (
    <li data-testid="workflow-row" data-workflow-id={workflow.id}>
      <a
        href={`/w/${encodeURIComponent(workflow.id)}`}
        onClick={(e) => {
          e.preventDefault()
          navigate(`/w/${encodeURIComponent(workflow.id)}`)
        }}
      >
        {workflow.title}
      </a>
      <span className="muted small">
        {owner ? 'yours' : <>owner <code data-testid="workflow-owner">{workflow.ownerId}</code> · you are {roleLabel(workflow.permission).toLowerCase()}</>}
        {workflow.public ? ' · public' : ''} · updated {new Date(workflow.updatedAt).toLocaleString()}
      </span>
      <span className="spacer" />
      {owner && (
        <>
          <button onClick={rename}>Rename</button>
          <button className="danger" onClick={remove}>
            Delete
          </button>
        </>
      )}
    </li>
  )
}
