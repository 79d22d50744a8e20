import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { addNode, connect, createUndoManager, removeNodes, setParam } from './edits'
import { restoreVersion, versionDoc } from './restore'
import { readNode, roots } from './schema'
import { spec, testIndex } from './test-catalog'

describe('restoreVersion', () => {
  it('makes the canvas equal to the version in one step of the local undo, and Undo takes it back', () => {
    const doc = new Y.Doc()
    const undo = createUndoManager(doc)
    const prompt = addNode(doc, spec('text-prompt'), { x: 0, y: 0 }, { text: 'a fox' })
    const image = addNode(doc, spec('dev-image'), { x: 300, y: 0 })
    connect(doc, testIndex, { source: prompt, sourceHandle: 'text', target: image, targetHandle: 'prompt' })
    // The version, as the server would send it.
    const version = versionDoc(Y.encodeStateAsUpdate(doc))
    const before = JSON.stringify(roots(version).nodes.toJSON())

    // Then: the prompt changes, the image node goes, a blur arrives.
    undo.stopCapturing()
    setParam(doc, prompt, 'text', 'a wolf')
    undo.stopCapturing()
    removeNodes(doc, [image])
    undo.stopCapturing()
    addNode(doc, spec('blur'), { x: 600, y: 0 })
    undo.stopCapturing()
    const edited = JSON.stringify(roots(doc).nodes.toJSON())

    const diff = restoreVersion(doc, version)
    // The image node and its wire back, the prompt changed back, the blur gone.
    expect(diff).toEqual({ added: 2, changed: 1, removed: 1 })
    expect(JSON.stringify(roots(doc).nodes.toJSON())).toBe(before)
    expect(roots(doc).edges.size).toBe(1)
    expect(readNode(prompt, roots(doc).nodes.get(prompt))?.params.text).toBe('a fox')

    // One Undo takes the whole restore back.
    undo.undo()
    expect(JSON.stringify(roots(doc).nodes.toJSON())).toBe(edited)
    undo.redo()
    expect(JSON.stringify(roots(doc).nodes.toJSON())).toBe(before)
  })

  it('leaves equal entries alone and never touches the executor’s roots', () => {
    const doc = new Y.Doc()
    addNode(doc, spec('blur'), { x: 0, y: 0 })
    roots(doc).results.set('x', { status: 'succeeded' })
    const version = versionDoc(Y.encodeStateAsUpdate(new Y.Doc()))
    const same = versionDoc(Y.encodeStateAsUpdate(doc))
    expect(restoreVersion(doc, same)).toEqual({ added: 0, changed: 0, removed: 0 })
    expect(restoreVersion(doc, version)).toEqual({ added: 0, changed: 0, removed: 1 })
    expect(roots(doc).results.get('x')).toEqual({ status: 'succeeded' })
  })

  it('refuses bytes that are not a Yjs update', () => {
    expect(() => versionDoc(new Uint8Array([1, 2, 3, 4, 5, 6, 7]))).toThrow()
  })
})
