import { describe, expect, test } from 'vitest'
import { describeEmailShare, parseInvitee, roleLabel } from './invitee'

describe('parseInvitee', () => {
  test('a user id is shared with as it is', () => {
    expect(parseInvitee('  u_3f9a0b12cd34ef56 ')).toEqual({ kind: 'user', id: 'u_3f9a0b12cd34ef56' })
  })

  test('an email is recognised, to share by address', () => {
    expect(parseInvitee('bob@example.com')).toEqual({ kind: 'email', email: 'bob@example.com' })
  })

  test('nothing, or something that is neither', () => {
    expect(parseInvitee('   ')).toEqual({ kind: 'empty' })
    expect(parseInvitee('u_1/../2').kind).toBe('invalid')
    expect(parseInvitee('bob smith').kind).toBe('invalid')
  })
})

describe('roleLabel', () => {
  test('permissions read as roles', () => {
    expect(roleLabel('read')).toBe('Viewer')
    expect(roleLabel('write')).toBe('Editor')
    expect(roleLabel('admin')).toBe('Owner')
  })
})

describe('describeEmailShare', () => {
  test('an account with the address is shared with at once', () => {
    const outcome = { status: 'shared', collaborator: { userId: 'u_1', permission: 'write' as const, addedAt: 1 } }
    expect(describeEmailShare('bob@example.com', outcome)).toBe('Shared with bob@example.com as editor.')
  })

  test('an address nobody has yet waits, until its expiry', () => {
    const invitation = {
      email: 'cat@example.com',
      permission: 'read' as const,
      invitedBy: 'u_1',
      createdAt: 0,
      expiresAt: Date.UTC(2027, 0, 5),
    }
    expect(describeEmailShare('Cat@example.com', { status: 'pending', invitation })).toBe(
      'Nobody has signed in with cat@example.com yet: they get access as viewer when they do (invitation valid until 2027-01-05).',
    )
  })
})
