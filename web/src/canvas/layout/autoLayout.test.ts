import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { addNode, connect, createUndoManager, moveNodes } from '../../doc/edits'
import { readNode, roots } from '../../doc/schema'
import { spec, testIndex } from '../../doc/test-catalog'
import { layeredLayout } from './autoLayout'

const overlap = (a: { x: number; y: number }, b: { x: number; y: number }, w: number, h: number) =>
  a.x < b.x + w && a.x + w > b.x && a.y < b.y + h && a.y + h > b.y

describe('layeredLayout', () => {
  it('puts a chain left to right along its wires, and a branch beside it, with no overlaps', () => {
    const size = { width: 240, height: 160 }
    const nodes = ['prompt', 'image', 'blur', 'invert', 'loose'].map((id) => ({ id, ...size }))
    const edges = [
      { source: 'prompt', target: 'image' },
      { source: 'image', target: 'blur' },
      { source: 'image', target: 'invert' },
    ]
    const at = layeredLayout(nodes, edges)
    const x = (id: string) => at.get(id)?.x ?? NaN
    expect(x('prompt')).toBeLessThan(x('image'))
    expect(x('image')).toBeLessThan(x('blur'))
    expect(x('blur')).toBe(x('invert'))
    const placed = [...at.values()]
    for (let i = 0; i < placed.length; i++) {
      for (let j = i + 1; j < placed.length; j++) {
        expect(overlap(placed[i]!, placed[j]!, size.width, size.height)).toBe(false)
      }
    }
  })

  it('is applied as one step of the local undo', () => {
    const doc = new Y.Doc()
    const undo = createUndoManager(doc)
    const a = addNode(doc, spec('text-prompt'), { x: 500, y: 500 })
    const b = addNode(doc, spec('dev-image'), { x: 0, y: 0 })
    connect(doc, testIndex, { source: a, sourceHandle: 'text', target: b, targetHandle: 'prompt' })
    undo.stopCapturing()
    const at = layeredLayout(
      [a, b].map((id) => ({ id, width: 240, height: 160 })),
      [{ source: a, target: b }],
    )
    moveNodes(doc, at)
    const position = (id: string) => readNode(id, roots(doc).nodes.get(id))?.position
    expect(position(a)?.x).toBeLessThan(position(b)?.x ?? -Infinity)
    undo.undo()
    expect(position(a)).toEqual({ x: 500, y: 500 })
    expect(position(b)).toEqual({ x: 0, y: 0 })
  })
})
