// One team: its members and their roles, its credits (balance, spend and limits), invitations,
// leaving, and (for owners and admins) the provider keys and the audit log. Everything goes
// through the team routes of the HTTP API; what a role may do is offered according to
// src/teams/roles.ts and decided by the server.
import { useCallback, useEffect, useState } from 'react'
import { api, type Team, type TeamInvitation, type TeamMember, type TeamRole } from '../api/client'
import type { Session } from '../auth/session'
import { describeError } from '../ui/errors'
import { navigate } from '../ui/router'
import { AuditLog } from './AuditLog'
import { ProviderKeys } from './ProviderKeys'
import { TeamCredits } from './TeamCredits'
import { TeamInviteForm } from './TeamInviteForm'
import { administers, assignableRoles, removes, teamRoleLabel } from './roles'

interface Props {
  teamId: string
  session: Session
}

export function TeamPage({ teamId, session }: Props) {
  const token = session.token
  const [team, setTeam] = useState<Team | null>(null)
  const [members, setMembers] = useState<TeamMember[]>([])
  const [invitations, setInvitations] = useState<TeamInvitation[]>([])
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  const load = useCallback(async () => {
    const loaded = await api.team(token, teamId)
    setTeam(loaded)
    setMembers((await api.teamMembers(token, teamId)).members)
    setInvitations(administers(loaded.role) ? (await api.teamInvitations(token, teamId)).invitations : [])
  }, [token, teamId])

  useEffect(() => {
    load().catch((cause: unknown) => setError(describeError(cause)))
  }, [load])

  /** Runs one change, then reloads what the server holds; true when the change worked. */
  async function act(action: () => Promise<unknown>): Promise<boolean> {
    setBusy(true)
    setError(null)
    let ok = false
    try {
      await action()
      ok = true
      await load()
    } catch (cause) {
      setError(describeError(cause))
    } finally {
      setBusy(false)
    }
    return ok
  }

  function rename() {
    const name = window.prompt('New team name', team?.name ?? '')
    if (name && name.trim() !== team?.name) void act(() => api.renameTeam(token, teamId, name.trim()))
  }

  async function remove() {
    const warning = `Delete ${team?.name ?? 'this team'}? Its workflows are deleted with it and its members lose access.`
    if (!window.confirm(warning)) return
    if (await act(() => api.deleteTeam(token, teamId))) navigate('/')
  }

  async function leave() {
    if (!window.confirm(`Leave ${team?.name ?? 'this team'}? Its workflows close to you.`)) return
    if (await act(() => api.leaveTeam(token, teamId))) navigate('/')
  }

  const back = (
    <a
      href="/"
      onClick={(e) => {
        e.preventDefault()
        navigate('/')
      }}
    >
      ← Workflows
    </a>
  )
  if (!team) {
    return (
      <main className="dashboard">
        <header className="topbar">{back}</header>
        {error ? (
          <p className="error" role="alert" data-testid="team-problem">
            {error}
          </p>
        ) : (
          <p className="muted">Loading the team…</p>
        )}
      </main>
    )
  }
  const mine = team.role
  return (
    <main className="dashboard team-page" data-testid="team-page">
      <header className="topbar">
        {back}
        <h1 data-testid="team-name">{team.name}</h1>
        <span className="muted small" data-testid="my-team-role">
          you are {teamRoleLabel(mine).toLowerCase()}
        </span>
        <span className="spacer" />
        {administers(mine) && (
          <button onClick={rename} disabled={busy}>
            Rename
          </button>
        )}
        {mine === 'owner' && (
          <button className="danger" onClick={() => void remove()} disabled={busy}>
            Delete team
          </button>
        )}
        <button className="danger" onClick={() => void leave()} disabled={busy}>
          Leave team
        </button>
      </header>
      {error && (
        <p className="error" role="alert" data-testid="team-error">
          {error}
        </p>
      )}
      <section className="workflow-section">
        <h2>Members</h2>
        <ul className="collaborators" data-testid="team-members">
          {members.map((member) => (
            <MemberRow
              key={member.userId}
              member={member}
              me={member.userId === session.me.id}
              mine={mine}
              busy={busy}
              onRole={(role) => void act(() => api.setTeamRole(token, teamId, member.userId, role))}
              onRemove={() => void act(() => api.removeTeamMember(token, teamId, member.userId))}
            />
          ))}
        </ul>
      </section>
      <TeamCredits token={token} teamId={teamId} manages={administers(mine)} />
      {administers(mine) && (
        <section className="workflow-section">
          <h2>Invite</h2>
          <TeamInviteForm busy={busy} onInvite={(invitee, role) => act(() => api.inviteToTeam(token, teamId, invitee, role))} />
          {invitations.length > 0 && (
            <ul className="collaborators" data-testid="team-invitations">
              {invitations.map((invitation) => (
                <li key={invitation.id} data-testid="team-invitation">
                  <code>{invitation.inviteeEmail ?? invitation.inviteeUserId}</code>
                  <span className="muted small">
                    {teamRoleLabel(invitation.role)} · until {new Date(invitation.expiresAt).toLocaleDateString()}
                  </span>
                  <span className="spacer" />
                  <button
                    className="danger"
                    disabled={busy}
                    onClick={() => void act(() => api.revokeTeamInvitation(token, teamId, invitation.id))}
                  >
                    Revoke
                  </button>
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
      {administers(mine) && <ProviderKeys token={token} teamId={teamId} />}
      {administers(mine) && <AuditLog token={token} teamId={teamId} />}
    </main>
  )
}

interface MemberRowProps {
  member: TeamMember
  me: boolean
  mine: TeamRole
  busy: boolean
  onRole: (role: TeamRole) => void
  onRemove: () => void
}

function MemberRow({ member, me, mine, busy, onRole, onRemove }: MemberRowProps) {
  const roles = me ? [] : assignableRoles(mine, member.role)
  return (
    <li data-testid="team-member" data-user-id={member.userId}>
      <span>{member.name ?? <code>{member.userId}</code>}</span>
      {member.name && <code className="muted small">{member.userId}</code>}
      {me && <span className="muted small">(you)</span>}
      <span className="spacer" />
      {roles.length > 0 ? (
        <select
          aria-label={`Role of ${member.name ?? member.userId}`}
          value={member.role}
          disabled={busy}
          onChange={(e) => onRole(e.target.value as TeamRole)}
        >
          {roles.map((role) => (
            <option key={role} value={role}>
              {teamRoleLabel(role)}
            </option>
          ))}
        </select>
      ) : (
        <span data-testid="member-role">{teamRoleLabel(member.role)}</span>
      )}
      {!me && removes(mine, member.role) && (
        <button className="danger" disabled={busy} onClick={onRemove} aria-label={`Remove ${member.name ?? member.userId}`}>
          Remove
        </button>
      )}
    </li>
  )
}
