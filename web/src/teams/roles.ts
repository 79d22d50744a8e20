// What a team role lets its holder do in the team screens, mirroring the server's rules
// (docs/api.md#teams): the server decides, these only decide what to offer.
import type { AuditEntry, TeamRole } from '../api/client'

export const TEAM_ROLES: readonly { role: TeamRole; label: string }[] = [
  { role: 'owner', label: 'Owner' },
  { role: 'admin', label: 'Admin' },
  { role: 'member', label: 'Member' },
  { role: 'viewer', label: 'Viewer' },
]

export function teamRoleLabel(role: TeamRole): string {
  return TEAM_ROLES.find((r) => r.role === role)?.label ?? role
}

/** Owners and admins manage members and invitations and read the audit log. */
export function administers(role: TeamRole): boolean {
  return role === 'owner' || role === 'admin'
}

/** Members and above create workflows in the team; viewers only read. */
export function createsWorkflows(role: TeamRole): boolean {
  return role !== 'viewer'
}

/** The roles `mine` may give someone whose role is `theirs` (empty: may not change it). */
export function assignableRoles(mine: TeamRole, theirs: TeamRole): TeamRole[] {
  if (mine === 'owner') return ['owner', 'admin', 'member', 'viewer']
  if (mine === 'admin' && theirs !== 'owner') return ['admin', 'member', 'viewer']
  return []
}

/** Whether `mine` may remove a member whose role is `theirs` (leaving is separate). */
export function removes(mine: TeamRole, theirs: TeamRole): boolean {
  return mine === 'owner' || (mine === 'admin' && theirs !== 'owner')
}

/** An invitation never makes an owner. */
export const INVITABLE_ROLES: TeamRole[] = ['admin', 'member', 'viewer']

/** One audit entry as a line a person reads. */
export function describeAuditEntry(entry: AuditEntry): string {
  const detail = entry.detail as Record<string, unknown>
  const text = (key: string) => (typeof detail[key] === 'string' ? (detail[key] as string) : null)
  switch (entry.action) {
    case 'member.role_changed':
      return `changed ${entry.targetId}'s role from ${text('from') ?? '?'} to ${text('to') ?? '?'}`
    case 'member.removed':
      return `removed ${entry.targetId}`
    case 'member.left':
      return 'left the team'
    case 'invitation.created': {
      const invitee = text('inviteeEmail') ?? text('inviteeUserId') ?? entry.targetId
      return `invited ${invitee} as ${text('role') ?? '?'}`
    }
    default: {
      const facts = Object.entries(detail)
        .filter(([, value]) => ['string', 'number', 'boolean'].includes(typeof value))
        .map(([key, value]) => `${key}: ${String(value)}`)
      return `${entry.action} ${entry.targetType} ${entry.targetId}${facts.length ? ` (${facts.join(', ')})` : ''}`
    }
  }
}
