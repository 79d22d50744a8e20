// Who the owner typed into the share dialog: a user id (PUT
// /api/workflows/{id}/collaborators/{userId}) or an email (POST /api/workflows/{id}/invitations:
// the address's account at once, or whoever signs in with it later).
import type { EmailShare } from '../api/client'

export type Invitee =
  | { kind: 'empty' }
  | { kind: 'user'; id: string }
  | { kind: 'email'; email: string }
  | { kind: 'invalid'; reason: string }

export function parseInvitee(text: string): Invitee {
  const value = text.trim()
  if (value === '') return { kind: 'empty' }
  if (/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(value)) return { kind: 'email', email: value }
  if (/^[A-Za-z0-9_-]+$/.test(value)) return { kind: 'user', id: value }
  return { kind: 'invalid', reason: 'a user id has letters, digits, "_" and "-" only (e.g. u_3f9a…)' }
}

/** What the dialog says after sharing with an address. */
export function describeEmailShare(email: string, outcome: EmailShare): string {
  if (outcome.status === 'shared' && outcome.collaborator) {
    return `Shared with ${email} as ${roleLabel(outcome.collaborator.permission).toLowerCase()}.`
  }
  const invitation = outcome.invitation
  if (!invitation) return `Shared with ${email}.`
  const until = new Date(invitation.expiresAt).toISOString().slice(0, 10)
  return `Nobody has signed in with ${invitation.email} yet: they get access as ${roleLabel(invitation.permission).toLowerCase()} when they do (invitation valid until ${until}).`
}

/** The roles as the dialog names them, and the permission the API stores for each. */
export const ROLES = [
  { permission: 'read', label: 'Viewer' },
  { permission: 'write', label: 'Editor' },
] as const

export type SharePermission = (typeof ROLES)[number]['permission']

export function roleLabel(permission: string): string {
  if (permission === 'admin') return 'Owner'
  return ROLES.find((role) => role.permission === permission)?.label ?? permission
}
