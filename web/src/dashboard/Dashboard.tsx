import { useCallback, useEffect, useState, type FormEvent } from 'react'
import { api, type Team, type TeamInvitation, type Workflow } from '../api/client'
import type { Session } from '../auth/session'
import { roleLabel } from '../share/invitee'
import { describeError } from '../ui/errors'
import { navigate } from '../ui/router'
import type { Theme } from '../ui/theme'
import { createsWorkflows } from '../teams/roles'
import { PERSONAL, TeamsPanel } from './TeamsPanel'
import { AccountData } from './AccountData'
import { groupWorkflows } from './workflowGroups'

const WORKSPACE_KEY = 'dojo.workspace'

function storedWorkspace(): string {
  try {
    return localStorage.getItem(WORKSPACE_KEY) ?? PERSONAL
  } catch {
    return PERSONAL
  }
}

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
  const [teams, setTeams] = useState<Team[]>([])
  const [invitations, setInvitations] = useState<TeamInvitation[]>([])
  const [workspace, setWorkspace] = useState(storedWorkspace)

  const load = useCallback(async () => {
    try {
      const [workflows, teams, invitations] = await Promise.all([
        api.workflows(session.token),
        api.teams(session.token),
        api.myInvitations(session.token),
      ])
      setWorkflows(workflows)
      setTeams(teams.teams)
      setInvitations(invitations.invitations)
    } catch (cause) {
      setError(describeError(cause))
    }
  }, [session.token])

  // A team I left (or that is gone) is no workspace of mine.
  const team = teams.find((t) => t.id === workspace) ?? null
  const current = team ? workspace : PERSONAL
  function chooseWorkspace(teamId: string) {
    setWorkspace(teamId)
    try {
      localStorage.setItem(WORKSPACE_KEY, teamId)
    } catch {
      // Storage disabled: the choice lasts as long as the page.
    }
  }

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
      const workflow = await api.createWorkflow(session.token, title.trim() || 'Untitled workflow', team?.id)
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
        {session.me.staffRole && (
          <a
            href="/staff"
            data-testid="staff-link"
            onClick={(e) => {
              e.preventDefault()
              navigate('/staff')
            }}
          >
            Staff
          </a>
        )}
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
      <TeamsPanel
        teams={teams}
        invitations={invitations}
        workspace={current}
        onWorkspace={(teamId) => {
          chooseWorkspace(teamId)
          void load()
        }}
        onCreate={async (name) => {
          let created = false
          await act(async () => {
            const made = await api.createTeam(session.token, name)
            chooseWorkspace(made.id)
            created = true
          })
          return created
        }}
        onAnswer={(invitation, accept) =>
          void act(() => (accept ? api.acceptInvitation : api.declineInvitation)(session.token, invitation))
        }
      />
      {(!team || createsWorkflows(team.role)) && (
        <form className="create" onSubmit={(e) => void create(e)}>
          <input
            name="title"
            aria-label="New workflow title"
            placeholder={team ? `New workflow in ${team.name}` : 'New workflow title'}
            value={title}
            onChange={(e) => setTitle(e.target.value)}
          />
          <button type="submit">Create workflow</button>
        </form>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {workflows === null ? (
        <p className="muted">Loading workflows…</p>
      ) : (
        <WorkflowLists workflows={workflows} myId={session.me.id} team={team} token={session.token} onAct={act} />
      )}
    </main>
  )
}

interface ListsProps {
  workflows: Workflow[]
  myId: string
  /** The team workspace shown, or null for personal. */
  team: Team | null
  token: string | null
  onAct: (action: () => Promise<unknown>) => Promise<void>
}

/** Mine first; then, when there are any, those shared with me, each with its owner. */
function WorkflowLists({ workflows, myId, team, token, onAct }: ListsProps) {
  const { mine, sharedWithMe } = groupWorkflows(workflows, myId, team?.id)
  return (
    <>
      <section className="workflow-section" data-testid={team ? 'team-workflows' : 'my-workflows'}>
        <h2>{team ? `${team.name}'s workflows` : 'Your workflows'}</h2>
        {mine.length === 0 ? (
          <p className="muted">No workflows yet{team && !createsWorkflows(team.role) ? '.' : ': create one above.'}</p>
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
