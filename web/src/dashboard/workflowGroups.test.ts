import { describe, expect, test } from 'vitest'
import type { Workflow } from '../api/client'
import { groupWorkflows } from './workflowGroups'

const workflow = (id: string, ownerId: string, permission: Workflow['permission']): Workflow => ({
  id,
  room: id,
  ownerId,
  title: id,
  public: false,
  permission,
  createdAt: 0,
  updatedAt: 0,
})

describe('groupWorkflows', () => {
  test('owned workflows and workflows shared with me are listed apart, order kept', () => {
    const all = [workflow('a', 'u_me', 'admin'), workflow('b', 'u_ann', 'write'), workflow('c', 'u_me', 'admin'), workflow('d', 'u_bo', 'read')]
    const { mine, sharedWithMe } = groupWorkflows(all, 'u_me')
    expect(mine.map((w) => w.id)).toEqual(['a', 'c'])
    expect(sharedWithMe.map((w) => w.id)).toEqual(['b', 'd'])
  })
})
