// Who the owner typed into the share dialog. The server shares with user ids only (PUT
// /api/workflows/{id}/collaborators/{userId}); it has no route that finds a user by email, so an
// email is recognised in order to say so, instead of failing as an unknown id.

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

export const EMAIL_NOT_SUPPORTED =
  'This server cannot look people up by email yet: ask them for their user id (it is on their dashboard) and paste it here.'

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
