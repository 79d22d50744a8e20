// Invite someone to a workflow by email or user id, as a viewer or an editor.
import { InviteeForm, type ParsedInvitee } from './InviteeForm'
import { ROLES, type SharePermission } from './invitee'

interface Props {
  busy: boolean
  onInvite: (invitee: ParsedInvitee, permission: SharePermission) => Promise<boolean>
}

const CHOICES = ROLES.map((role) => ({ value: role.permission, label: role.label }))

export function InviteForm({ busy, onInvite }: Props) {
  return (
    <InviteeForm
      label="Email or user id to invite"
      roleLabel="Role"
      roles={CHOICES}
      initialRole="write"
      busy={busy}
      onInvite={onInvite}
    />
  )
}
