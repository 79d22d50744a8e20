// Invite someone to a team by email or user id, with the role accepting gives.
import type { TeamRole } from '../api/client'
import { InviteeForm } from '../share/InviteeForm'
import { INVITABLE_ROLES, teamRoleLabel } from './roles'

interface Props {
  busy: boolean
  onInvite: (invitee: { userId: string } | { email: string }, role: TeamRole) => Promise<boolean>
}

const CHOICES = INVITABLE_ROLES.map((role) => ({ value: role, label: teamRoleLabel(role) }))

export function TeamInviteForm({ busy, onInvite }: Props) {
  return (
    <InviteeForm
      label="Email or user id to invite to the team"
      roleLabel="Team role"
      roles={CHOICES}
      initialRole="member"
      busy={busy}
      onInvite={(invitee, role) => onInvite(invitee.kind === 'email' ? { email: invitee.email } : { userId: invitee.id }, role)}
    />
  )
}
