import { describe, expect, test } from 'vitest'
import type { Workflow } from '../api/client'
import { groupWorkflows } from './workflowGroups'

const workflow = (id: string, ownerId: string, permission: Workflow['permission'], teamId?: string): Workflow => ({
  id,
  teamId,
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

  test("a team workspace lists that team's workflows only; personal lists none of a team's", () => {
    const all = [workflow('a', 'u_me', 'admin'), workflow('t1', 'u_ann', 'write', 'team_1'), workflow('t2', 'u_me', 'admin', 'team_2')]
    expect(groupWorkflows(all, 'u_me', 'team_1').mine.map((w) => w.id)).toEqual(['t1'])
    const personal = groupWorkflows(all, 'u_me')
    expect([...personal.mine, ...personal.sharedWithMe].map((w) => w.id)).toEqual(['a'])
  })
})
