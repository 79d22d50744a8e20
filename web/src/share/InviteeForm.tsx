// One invite box for workflows and teams: an email or a user id, and the role it gets.
import { useState, type FormEvent } from 'react'
import { parseInvitee, type Invitee } from './invitee'

export type ParsedInvitee = Extract<Invitee, { kind: 'user' | 'email' }>

interface Props<Role extends string> {
  /** The input's accessible name. */
  label: string
  roleLabel: string
  roles: readonly { value: Role; label: string }[]
  initialRole: Role
  busy: boolean
  /** True when the invitation was made (the box is then emptied). */
  onInvite: (invitee: ParsedInvitee, role: Role) => Promise<boolean>
}

export function InviteeForm<Role extends string>({ label, roleLabel, roles, initialRole, busy, onInvite }: Props<Role>) {
  const [text, setText] = useState('')
  const [role, setRole] = useState<Role>(initialRole)
  const [problem, setProblem] = useState<string | null>(null)

  async function submit(event: FormEvent) {
    event.preventDefault()
    const invitee = parseInvitee(text)
    if (invitee.kind === 'invalid') return setProblem(`That is neither an email nor a user id: ${invitee.reason}.`)
    if (invitee.kind === 'empty') return
    setProblem(null)
    if (await onInvite(invitee, role)) setText('')
  }

  return (
    <form className="invite-form" onSubmit={(e) => void submit(e)}>
      <input
        aria-label={label}
        placeholder="Their email, or their user id (u_…)"
        maxLength={254}
        value={text}
        onChange={(e) => {
          setText(e.target.value)
          setProblem(null)
        }}
      />
      <select aria-label={roleLabel} value={role} onChange={(e) => setRole(e.target.value as Role)}>
        {roles.map((r) => (
          <option key={r.value} value={r.value}>
            {r.label}
          </option>
        ))}
      </select>
      <button type="submit" className="primary" disabled={busy || text.trim() === ''}>
        Invite
      </button>
      {problem && (
        <p className="field-problem" role="alert" data-testid="invite-problem">
          {problem}
        </p>
      )}
    </form>
  )
}
