// Invite someone to a team by email or user id, with the role accepting gives.
import { useState, type FormEvent } from 'react'
import type { TeamRole } from '../api/client'
import { parseInvitee } from '../share/invitee'
import { INVITABLE_ROLES, teamRoleLabel } from './roles'

interface Props {
  busy: boolean
  onInvite: (invitee: { userId: string } | { email: string }, role: TeamRole) => Promise<boolean>
}

export function TeamInviteForm({ busy, onInvite }: Props) {
  const [text, setText] = useState('')
  const [role, setRole] = useState<TeamRole>('member')
  const [problem, setProblem] = useState<string | null>(null)

  async function submit(event: FormEvent) {
    event.preventDefault()
    const invitee = parseInvitee(text)
    if (invitee.kind === 'invalid') return setProblem(`That is neither an email nor a user id: ${invitee.reason}.`)
    if (invitee.kind === 'empty') return
    setProblem(null)
    const body = invitee.kind === 'email' ? { email: invitee.email } : { userId: invitee.id }
    if (await onInvite(body, role)) setText('')
  }

  return (
    <form className="invite-form" onSubmit={(e) => void submit(e)}>
      <input
        aria-label="Email or user id to invite to the team"
        placeholder="Their email, or their user id (u_…)"
        maxLength={254}
        value={text}
        onChange={(e) => {
          setText(e.target.value)
          setProblem(null)
        }}
      />
      <select aria-label="Team role" value={role} onChange={(e) => setRole(e.target.value as TeamRole)}>
        {INVITABLE_ROLES.map((r) => (
          <option key={r} value={r}>
            {teamRoleLabel(r)}
          </option>
        ))}
      </select>
      <button type="submit" className="primary" disabled={busy || text.trim() === ''}>
        Invite
      </button>
      {problem && (
        <p className="field-problem" role="alert">
          {problem}
        </p>
      )}
    </form>
  )
}
