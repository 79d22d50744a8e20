import { describe, expect, test } from 'vitest'
import type { AuditEntry } from '../api/client'
import { administers, assignableRoles, createsWorkflows, describeAuditEntry, removes } from './roles'

const entry = (action: string, detail: Record<string, unknown>, targetId = 'u_2'): AuditEntry => ({
  action,
  actorId: 'u_1',
  actorType: 'user',
  createdAt: 0,
  detail: detail as AuditEntry['detail'],
  seq: 1,
  targetId,
  targetType: 'user',
})

describe('team roles', () => {
  test('owners and admins administer; viewers do not create workflows', () => {
    expect(['owner', 'admin', 'member', 'viewer'].map((r) => administers(r as never))).toEqual([true, true, false, false])
    expect(createsWorkflows('member')).toBe(true)
    expect(createsWorkflows('viewer')).toBe(false)
  })

  test('an admin changes anyone but an owner, and never makes one', () => {
    expect(assignableRoles('owner', 'owner')).toContain('owner')
    expect(assignableRoles('admin', 'member')).toEqual(['admin', 'member', 'viewer'])
    expect(assignableRoles('admin', 'owner')).toEqual([])
    expect(assignableRoles('member', 'viewer')).toEqual([])
    expect(removes('admin', 'owner')).toBe(false)
    expect(removes('admin', 'viewer')).toBe(true)
    expect(removes('member', 'viewer')).toBe(false)
  })
})

describe('describeAuditEntry', () => {
  test('known actions read as sentences', () => {
    expect(describeAuditEntry(entry('member.role_changed', { from: 'member', to: 'viewer' }))).toBe(
      "changed u_2's role from member to viewer",
    )
    expect(describeAuditEntry(entry('invitation.created', { role: 'member', inviteeEmail: 'bo@example.com' }, 'inv_1'))).toBe(
      'invited bo@example.com as member',
    )
  })

  test('others list their plain facts', () => {
    expect(describeAuditEntry(entry('workflow.shared', { user: 'u_3', permission: 'write', nested: { a: 1 } }, 'wf_1'))).toBe(
      'workflow.shared user wf_1 (user: u_3, permission: write)',
    )
  })
})
