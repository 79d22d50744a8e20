// Invite someone by user id as a viewer or an editor.
import { useState, type FormEvent } from 'react'
import { EMAIL_NOT_SUPPORTED, parseInvitee, ROLES, type SharePermission } from './invitee'

interface Props {
  busy: boolean
  onInvite: (userId: string, permission: SharePermission) => Promise<boolean>
}

export function InviteForm({ busy, onInvite }: Props) {
  const [text, setText] = useState('')
  const [permission, setPermission] = useState<SharePermission>('write')
  const [problem, setProblem] = useState<string | null>(null)

  async function submit(event: FormEvent) {
    event.preventDefault()
    const invitee = parseInvitee(text)
    if (invitee.kind === 'email') return setProblem(EMAIL_NOT_SUPPORTED)
    if (invitee.kind === 'invalid') return setProblem(`That is not a user id: ${invitee.reason}.`)
    if (invitee.kind === 'empty') return
    setProblem(null)
    if (await onInvite(invitee.id, permission)) setText('')
  }

  return (
    <form className="invite-form" onSubmit={(e) => void submit(e)}>
      <input
        aria-label="User id to invite"
        placeholder="Their user id (u_…), from their dashboard"
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
