// Invite someone by user id or by email, as a viewer or an editor.
import { useState, type FormEvent } from 'react'
import { parseInvitee, ROLES, type Invitee, type SharePermission } from './invitee'

interface Props {
  busy: boolean
  onInvite: (invitee: Extract<Invitee, { kind: 'user' | 'email' }>, permission: SharePermission) => Promise<boolean>
}

export function InviteForm({ busy, onInvite }: Props) {
  const [text, setText] = useState('')
  const [permission, setPermission] = useState<SharePermission>('write')
  const [problem, setProblem] = useState<string | null>(null)

  async function submit(event: FormEvent) {
    event.preventDefault()
    const invitee = parseInvitee(text)
    if (invitee.kind === 'invalid') return setProblem(`That is neither an email nor a user id: ${invitee.reason}.`)
    if (invitee.kind === 'empty') return
    setProblem(null)
    if (await onInvite(invitee, permission)) setText('')
  }

  return (
    <form className="invite-form" onSubmit={(e) => void submit(e)}>
      <input
        aria-label="Email or user id to invite"
        placeholder="Their email, or their user id (u_…)"
        maxLength={254}
        value={text}
        onChange={(e) => {
          setText(e.target.value)
          setProblem(null)
        }}
      />
      <select aria-label="Role" value={permission} onChange={(e) => setPermission(e.target.value as SharePermission)}>
        {ROLES.map((role) => (
          <option key={role.permission} value={role.permission}>
            {role.label}
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
