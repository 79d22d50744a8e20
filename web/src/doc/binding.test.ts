import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { CanvasBinding } from './binding'
import { addNode, connect, createUndoManager, duplicateNodes, setParam } from './edits'
import { roots } from './schema'
import { spec, testIndex } from './test-catalog'

/** Two replicas of one room, wired both ways as the server would relay them. */
function pair(): [Y.Doc, Y.Doc] {
  const a = new Y.Doc()
  const b = new Y.Doc()
  a.on('update', (update: Uint8Array, origin: unknown) => origin !== 'remote' && Y.applyUpdate(b, update, 'remote'))
  b.on('update', (update: Uint8Array, origin: unknown) => origin !== 'remote' && Y.applyUpdate(a, update, 'remote'))
  return [a, b]
}

describe('CanvasBinding', () => {
  it('derives React Flow nodes and edges from the document, including remote edits', () => {
    const [a, b] = pair()
    const bindingB = new CanvasBinding(b)
    const prompt = addNode(a, spec('text-prompt'), { x: 10, y: 20 })
    const image = addNode(a, spec('dev-image'), { x: 300, y: 20 })
    expect(connect(a, testIndex, { source: prompt, sourceHandle: 'text', target: image, targetHandle: 'prompt' }).ok).toBe(true)
    const { nodes, edges } = bindingB.getSnapshot()
    expect(nodes.map((n) => [n.id, n.data.nodeType, n.position])).toEqual([
      [prompt, 'text-prompt', { x: 10, y: 20 }],
      [image, 'dev-image', { x: 300, y: 20 }],
    ])
    expect(nodes[1]?.data.params).toEqual({ prompt: '', seed: 0 })
    expect(edges.map((e) => [e.source, e.sourceHandle, e.target, e.targetHandle])).toEqual([[prompt, 'text', image, 'prompt']])
  })

  it('writes drags to the document as whole positions, and keeps unchanged nodes identical', () => {
    const [a, b] = pair()
    const binding = new CanvasBinding(a)
    const first = addNode(a, spec('blur'), { x: 0, y: 0 })
    const second = addNode(a, spec('blur'), { x: 100, y: 0 })
    const before = binding.getSnapshot().nodes.find((n) => n.id === second)
    binding.onNodesChange([{ type: 'position', id: first, position: { x: 42, y: 7 }, dragging: true }])
    expect(roots(b).nodes.get(first)?.get('position')).toEqual({ x: 42, y: 7 })
    const after = binding.getSnapshot()
    expect(after.nodes.find((n) => n.id === first)?.dragging).toBe(true)
    expect(after.nodes.find((n) => n.id === second)).toBe(before)
  })

  it('keeps selection and measured size local: the other replica sees neither', () => {
    const [a, b] = pair()
    const bindingA = new CanvasBinding(a)
    const bindingB = new CanvasBinding(b)
    const id = addNode(a, spec('blur'), { x: 0, y: 0 })
    bindingA.onNodesChange([
      { type: 'select', id, selected: true },
      { type: 'dimensions', id, dimensions: { width: 200, height: 90 } },
    ])
    expect(bindingA.getSnapshot().nodes[0]).toMatchObject({ selected: true, measured: { width: 200, height: 90 } })
    expect(bindingB.getSnapshot().nodes[0]?.selected).toBe(false)
    expect(bindingB.getSnapshot().nodes[0]?.measured).toBeUndefined()
  })

  it('removing a node removes its edges and result for everyone', () => {
    const [a, b] = pair()
    const binding = new CanvasBinding(a)
    const prompt = addNode(a, spec('text-prompt'), { x: 0, y: 0 })
    const image = addNode(a, spec('dev-image'), { x: 200, y: 0 })
    connect(a, testIndex, { source: prompt, sourceHandle: 'text', target: image, targetHandle: 'prompt' })
    roots(b).results.set(image, new Y.Map(Object.entries({ status: 'succeeded', progress: 100 })))
    expect(binding.getSnapshot().nodes.find((n) => n.id === image)?.data.result?.status).toBe('succeeded')
    binding.onNodesChange([{ type: 'remove', id: image }])
    expect([...roots(b).nodes.keys()]).toEqual([prompt])
    expect(roots(b).edges.size).toBe(0)
    expect(roots(b).results.size).toBe(0)
  })

  it('a read-only binding writes nothing', () => {
    const [a, b] = pair()
    const id = addNode(b, spec('blur'), { x: 5, y: 5 })
    const binding = new CanvasBinding(a)
    binding.readOnly = true
    binding.onNodesChange([{ type: 'position', id, position: { x: 99, y: 99 } }, { type: 'remove', id }])
    expect(roots(b).nodes.get(id)?.get('position')).toEqual({ x: 5, y: 5 })
  })

  it('reads executor results: statuses, progress and typed outputs', () => {
    const doc = new Y.Doc()
    const binding = new CanvasBinding(doc)
    const id = addNode(doc, spec('blur'), { x: 0, y: 0 })
    const result = new Y.Map<unknown>()
    roots(doc).results.set(id, result)
    result.set('status', 'running')
    result.set('progress', 40)
    expect(binding.getSnapshot().nodes[0]?.data.result).toMatchObject({ status: 'running', progress: 40 })
    result.set('status', 'succeeded')
    result.set('outputs', {
      image: { kind: 'asset', asset: { id: 'abc', contentType: 'image/png' }, url: '/assets/abc' },
      note: { kind: 'text', text: 'hi' },
    })
    expect(binding.getSnapshot().nodes[0]?.data.result?.outputs).toEqual({
      image: { kind: 'asset', asset: { id: 'abc', contentType: 'image/png' }, url: '/assets/abc' },
      note: { kind: 'text', text: 'hi' },
    })
  })
})

describe('edits', () => {
  it('refuses connections the catalog forbids: wrong types, self-loops, cycles', () => {
    const doc = new Y.Doc()
    const prompt = addNode(doc, spec('text-prompt'), { x: 0, y: 0 })
    const blurA = addNode(doc, spec('blur'), { x: 0, y: 0 })
    const blurB = addNode(doc, spec('blur'), { x: 0, y: 0 })
    expect(connect(doc, testIndex, { source: prompt, sourceHandle: 'text', target: blurA, targetHandle: 'image' })).toMatchObject({
      ok: false,
      reason: 'a text output cannot go into an image input',
    })
    expect(connect(doc, testIndex, { source: blurA, sourceHandle: 'image', target: blurA, targetHandle: 'image' }).ok).toBe(false)
    expect(connect(doc, testIndex, { source: blurA, sourceHandle: 'image', target: blurB, targetHandle: 'image' }).ok).toBe(true)
    expect(connect(doc, testIndex, { source: blurB, sourceHandle: 'image', target: blurA, targetHandle: 'image' })).toMatchObject({
      ok: false,
      reason: 'that would make a cycle',
    })
    expect(roots(doc).edges.size).toBe(1)
  })

  it('a second wire into the same input replaces the first', () => {
    const doc = new Y.Doc()
    const one = addNode(doc, spec('text-prompt'), { x: 0, y: 0 })
    const two = addNode(doc, spec('text-prompt'), { x: 0, y: 0 })
    const image = addNode(doc, spec('dev-image'), { x: 0, y: 0 })
    connect(doc, testIndex, { source: one, sourceHandle: 'text', target: image, targetHandle: 'prompt' })
    connect(doc, testIndex, { source: two, sourceHandle: 'text', target: image, targetHandle: 'prompt' })
    const sources = [...roots(doc).edges.values()].map((e) => e.get('source'))
    expect(sources).toEqual([two])
  })

  it('duplicates nodes with their parameters and the wires between them', () => {
    const doc = new Y.Doc()
    const prompt = addNode(doc, spec('text-prompt'), { x: 0, y: 0 })
    const image = addNode(doc, spec('dev-image'), { x: 200, y: 0 })
    setParam(doc, prompt, 'text', 'a red fox')
    connect(doc, testIndex, { source: prompt, sourceHandle: 'text', target: image, targetHandle: 'prompt' })
    const [promptCopy, imageCopy] = duplicateNodes(doc, [prompt, image])
    expect(roots(doc).nodes.get(promptCopy as string)?.get('position')).toEqual({ x: 40, y: 40 })
    expect((roots(doc).nodes.get(promptCopy as string)?.get('data') as Y.Map<unknown>).get('text')).toBe('a red fox')
    const copied = [...roots(doc).edges.values()].filter((e) => e.get('source') === promptCopy)
    expect(copied.map((e) => e.get('target'))).toEqual([imageCopy])
  })

  it('undo takes back only this editor’s own changes', () => {
    const [a, b] = pair()
    const undoA = createUndoManager(a)
    const mine = addNode(a, spec('blur'), { x: 0, y: 0 })
    undoA.stopCapturing()
    const theirs = addNode(b, spec('blur'), { x: 50, y: 0 })
    undoA.undo()
    expect([...roots(b).nodes.keys()]).toEqual([theirs])
    undoA.redo()
    expect(new Set(roots(b).nodes.keys())).toEqual(new Set([mine, theirs]))
  })
})
