import { describe, expect, test } from 'vitest'
import { parseInvitee, roleLabel } from './invitee'

describe('parseInvitee', () => {
  test('a user id is shared with as it is', () => {
    expect(parseInvitee('  u_3f9a0b12cd34ef56 ')).toEqual({ kind: 'user', id: 'u_3f9a0b12cd34ef56' })
  })

  test('an email is recognised, to explain the server cannot resolve it', () => {
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
