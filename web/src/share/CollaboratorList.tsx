// The people a workflow is shared with: change a role, or remove someone.
import type { Collaborator } from '../api/client'
import { roleLabel, ROLES, type SharePermission } from './invitee'

interface Props {
  ownerId: string
  collaborators: Collaborator[]
  busy: boolean
  onChangeRole: (userId: string, permission: SharePermission) => void
  onRemove: (userId: string) => void
}

export function CollaboratorList({ ownerId, collaborators, busy, onChangeRole, onRemove }: Props) {
  return (
    <ul className="collaborators" data-testid="collaborators">
      <li>
        <code>{ownerId}</code> <span className="muted small">(you)</span>
        <span className="spacer" />
        <span>{roleLabel('admin')}</span>
      </li>
      {collaborators.map((person) => (
        <li key={person.userId} data-testid="collaborator" data-user-id={person.userId}>
          <code>{person.userId}</code>
          <span className="spacer" />
          <select
            aria-label={`Role of ${person.userId}`}
            value={person.permission}
            disabled={busy}
            onChange={(e) => onChangeRole(person.userId, e.target.value as SharePermission)}
          >
            {ROLES.map((role) => (
              <option key={role.permission} value={role.permission}>
                {role.label}
              </option>
            ))}
          </select>
          <button className="danger" disabled={busy} onClick={() => onRemove(person.userId)} aria-label={`Remove ${person.userId}`}>
            Remove
          </button>
        </li>
      ))}
      {collaborators.length === 0 && <li className="muted small">Not shared with anyone yet.</li>}
    </ul>
  )
}
