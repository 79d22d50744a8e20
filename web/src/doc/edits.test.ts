import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { allEdges, applyOps, createUndoManager, type EditOp } from './edits'
import { readNode, roots } from './schema'
import { spec, testIndex } from './test-catalog'

// A composed plan as POST /api/rooms/{room}/compose?apply=false answers it.
function plan(types: [string, string]): EditOp[] {
  return [
    { op: 'addNode', id: 'c-0', type: types[0], position: { x: 0, y: 200 } },
    { op: 'addNode', id: 'c-1', type: types[1], position: { x: 280, y: 200 } },
    { op: 'connect', id: 'c-0-c-1', source: 'c-0', target: 'c-1' },
  ]
}

describe('applyOps', () => {
  it('applies a planned edit as one step of the local undo, leaving earlier edits alone', () => {
    const doc = new Y.Doc()
    const undo = createUndoManager(doc)
    applyOps(doc, testIndex, [{ op: 'addNode', id: 'mine', type: 'text-prompt', position: { x: 0, y: 0 } }])
    undo.stopCapturing()
    const added = applyOps(doc, testIndex, plan(['text-prompt', 'dev-image']))
    undo.stopCapturing()
    expect(added).toEqual(['c-0', 'c-1'])
    expect([...roots(doc).nodes.keys()].sort()).toEqual(['c-0', 'c-1', 'mine'])
    expect(allEdges(doc).map((e) => e.id)).toEqual(['c-0-c-1'])
    // New nodes start with the catalog's defaults, like the palette's.
    const node = readNode('c-1', roots(doc).nodes.get('c-1'))
    const defaults = Object.fromEntries(spec('dev-image').params.map((p) => [p.name, p.default]))
    expect(node?.params).toEqual(defaults)

    undo.undo()
    expect([...roots(doc).nodes.keys()]).toEqual(['mine'])
    expect(allEdges(doc)).toEqual([])
  })

  it('sets, removes and moves like the other edits', () => {
    const doc = new Y.Doc()
    const type = 'blur'
    applyOps(doc, testIndex, [
      { op: 'addNode', id: 'a', type, position: { x: 0, y: 0 }, params: { extra: 1 } },
      { op: 'setParam', node: 'a', name: 'extra', value: 2 },
      { op: 'move', node: 'a', position: { x: 5, y: 6 } },
    ])
    expect(readNode('a', roots(doc).nodes.get('a'))?.params.extra).toBe(2)
    expect(readNode('a', roots(doc).nodes.get('a'))?.position).toEqual({ x: 5, y: 6 })
    applyOps(doc, testIndex, [{ op: 'removeNode', node: 'a' }])
    expect(roots(doc).nodes.size).toBe(0)
  })
})
