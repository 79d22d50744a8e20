// Addresses invited to the workflow that nobody has signed in with yet: the owner can withdraw them.
import type { WorkflowInvitation } from '../api/client'
import { roleLabel } from './invitee'

interface Props {
  invitations: WorkflowInvitation[]
  busy: boolean
  onRevoke: (email: string) => void
}

export function PendingInvitations({ invitations, busy, onRevoke }: Props) {
  if (invitations.length === 0) return null
  return (
    <section data-testid="pending-invitations">
      <h3 className="small muted">Waiting for them to sign in</h3>
      <ul className="collaborators">
        {invitations.map((invitation) => (
          <li key={invitation.email} data-testid="pending-invitation" data-email={invitation.email}>
            <code>{invitation.email}</code>
            <span className="spacer" />
            <span>{roleLabel(invitation.permission)}</span>
            <button
              className="danger"
              disabled={busy}
              onClick={() => onRevoke(invitation.email)}
              aria-label={`Withdraw the invitation of ${invitation.email}`}
            >
              Withdraw
            </button>
          </li>
        ))}
      </ul>
    </section>
  )
}
