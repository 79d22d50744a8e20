// The dashboard's teams: the workspace switcher (my own workflows, or one team's), my teams with
// a link to each, creating a team, and invitations addressed to me with Accept and Decline.
import { useState, type FormEvent } from 'react'
import type { Team, TeamInvitation } from '../api/client'
import { navigate } from '../ui/router'
import { teamRoleLabel } from '../teams/roles'

export const PERSONAL = ''

interface Props {
  teams: Team[]
  invitations: TeamInvitation[]
  workspace: string
  onWorkspace: (teamId: string) => void
  onCreate: (name: string) => Promise<boolean>
  onAnswer: (invitation: string, accept: boolean) => void
}

export function TeamsPanel({ teams, invitations, workspace, onWorkspace, onCreate, onAnswer }: Props) {
  const [name, setName] = useState('')

  async function create(event: FormEvent) {
    event.preventDefault()
    if (name.trim() && (await onCreate(name.trim()))) setName('')
  }

  return (
    <section className="workflow-section teams-panel" data-testid="teams-panel">
      <label className="workspace">
        Workspace
        <select aria-label="Workspace" value={workspace} onChange={(e) => onWorkspace(e.target.value)} data-testid="workspace">
          <option value={PERSONAL}>Personal</option>
          {teams.map((team) => (
            <option key={team.id} value={team.id}>
              {team.name}
            </option>
          ))}
        </select>
      </label>
      {teams.length > 0 && (
        <ul className="workflows" data-testid="my-teams">
          {teams.map((team) => (
            <li key={team.id} data-testid="team-row" data-team-id={team.id}>
              <a
                href={`/teams/${encodeURIComponent(team.id)}`}
                onClick={(e) => {
                  e.preventDefault()
                  navigate(`/teams/${encodeURIComponent(team.id)}`)
                }}
              >
                {team.name}
              </a>
              <span className="muted small">you are {teamRoleLabel(team.role).toLowerCase()}</span>
            </li>
          ))}
        </ul>
      )}
      <form className="create" onSubmit={(e) => void create(e)}>
        <input aria-label="New team name" placeholder="New team name" maxLength={100} value={name} onChange={(e) => setName(e.target.value)} />
        <button type="submit" disabled={name.trim() === ''}>
          Create team
        </button>
      </form>
      {invitations.length > 0 && (
        <div data-testid="my-invitations">
          <h3>Invitations for you</h3>
          <ul className="workflows">
            {invitations.map((invitation) => (
              <li key={invitation.id} data-testid="my-invitation" data-team-id={invitation.teamId}>
                <span>
                  Join <strong>{invitation.teamName}</strong> as {teamRoleLabel(invitation.role).toLowerCase()}
                </span>
                <span className="spacer" />
                <button className="primary" onClick={() => onAnswer(invitation.id, true)}>
                  Accept
                </button>
                <button onClick={() => onAnswer(invitation.id, false)}>Decline</button>
              </li>
            ))}
          </ul>
        </div>
      )}
    </section>
  )
}
