import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { addNode, createUndoManager } from './edits'
import { readNode, roots } from './schema'
import { editText, isSharedTextParam, moveCaret, moveCaretByDelta, readText, textChange } from './sharedText'
import { spec } from './test-catalog'

/** Two documents that exchange every update, as two people in one room do. */
function pair(): [Y.Doc, Y.Doc] {
  const a = new Y.Doc()
  const b = new Y.Doc()
  a.on('update', (update: Uint8Array, origin: unknown) => origin !== 'remote' && Y.applyUpdate(b, update, 'remote'))
  b.on('update', (update: Uint8Array, origin: unknown) => origin !== 'remote' && Y.applyUpdate(a, update, 'remote'))
  return [a, b]
}

describe('shared text', () => {
  it('finds the smallest change and moves a caret past what others insert before it', () => {
    expect(textChange('a fox', 'a red fox')).toEqual({ index: 2, remove: 0, insert: 'red ' })
    expect(textChange('a red fox', 'a fox')).toEqual({ index: 2, remove: 4, insert: '' })
    expect(textChange('abc', 'abc')).toEqual({ index: 3, remove: 0, insert: '' })
    // In a run of equal characters, where the caret says it was typed.
    expect(textChange('aa', 'aaa')).toEqual({ index: 2, remove: 0, insert: 'a' })
    expect(textChange('aa', 'aaa', 1)).toEqual({ index: 0, remove: 0, insert: 'a' })
    expect(textChange('onal', 'onaal', 3)).toEqual({ index: 2, remove: 0, insert: 'a' })
    expect(textChange('aaa', 'aa', 0)).toEqual({ index: 0, remove: 1, insert: '' })
    expect(moveCaret(5, { index: 0, remove: 0, insert: 'xy' })).toBe(7)
    expect(moveCaret(5, { index: 5, remove: 0, insert: 'xy' })).toBe(5)
    expect(moveCaret(5, { index: 3, remove: 4, insert: '' })).toBe(3)
    expect(moveCaret(2, { index: 4, remove: 1, insert: 'z' })).toBe(2)
  })

  it('moves a caret exactly by a Yjs text delta', () => {
    const doc = new Y.Doc()
    const text = doc.getText('t')
    text.insert(0, 'T ')
    const carets: number[] = []
    text.observe((event) => carets.push(moveCaretByDelta(2, event.delta)))
    // Someone else's space right before the caret's own space: a string diff cannot tell, the delta can.
    text.insert(1, ' ')
    text.insert(3, 'x')
    text.delete(0, 2)
    expect(carets).toEqual([3, 2, 0])
  })

  it('treats prompts and system messages as shared text, not choices, asset ids or short labels', () => {
    expect(isSharedTextParam({ name: 'text', type: 'string', maxLength: 8000 })).toBe(true)
    expect(isSharedTextParam({ name: 'prompt', type: 'string' })).toBe(true)
    expect(isSharedTextParam({ name: 'size', type: 'string', allowed: ['a', 'b'] })).toBe(false)
    expect(isSharedTextParam({ name: 'asset', type: 'string', maxLength: 128, asset: true })).toBe(false)
    expect(isSharedTextParam({ name: 'label', type: 'string', maxLength: 80 })).toBe(false)
    expect(isSharedTextParam({ name: 'seed', type: 'integer' })).toBe(false)
  })

  it('keeps both people’s characters when they type into one prompt at once', () => {
    const [a, b] = pair()
    const id = addNode(a, spec('text-prompt'), { x: 0, y: 0 })
    expect(roots(b).nodes.get(id)?.get('data')).toBeInstanceOf(Y.Map)
    expect((roots(b).nodes.get(id)?.get('data') as Y.Map<unknown>).get('text')).toBeInstanceOf(Y.Text)
    // Both type while cut off from each other, then exchange.
    const offline = new Y.Doc()
    Y.applyUpdate(offline, Y.encodeStateAsUpdate(b))
    let mine = ''
    for (const ch of 'a red fox') {
      mine += ch
      editText(a, id, 'text', mine)
    }
    let theirs = ''
    for (const ch of ' at dusk') {
      theirs += ch
      editText(offline, id, 'text', theirs)
    }
    Y.applyUpdate(a, Y.encodeStateAsUpdate(offline), 'remote')
    Y.applyUpdate(b, Y.encodeStateAsUpdate(offline), 'remote')
    const merged = readText(a, id, 'text')
    expect(merged).toBe(readText(b, id, 'text'))
    expect(merged).toContain('a red fox')
    expect(merged).toContain(' at dusk')
    expect(merged.length).toBe('a red fox at dusk'.length)
    expect(readNode(id, roots(a).nodes.get(id))?.params.text).toBe(merged)
  })

  it('reads an older document’s plain string, and turns it into shared text on the first edit', () => {
    const doc = new Y.Doc()
    const undo = createUndoManager(doc)
    const node = new Y.Map<unknown>()
    const data = new Y.Map<unknown>()
    data.set('text', 'an old prompt')
    node.set('id', 'old')
    node.set('type', 'text-prompt')
    node.set('position', { x: 0, y: 0 })
    node.set('data', data)
    roots(doc).nodes.set('old', node)
    expect(readText(doc, 'old', 'text')).toBe('an old prompt')
    expect(readNode('old', roots(doc).nodes.get('old'))?.params.text).toBe('an old prompt')
    editText(doc, 'old', 'text', 'an old prompt, edited')
    expect(data.get('text')).toBeInstanceOf(Y.Text)
    expect(readText(doc, 'old', 'text')).toBe('an old prompt, edited')
    undo.stopCapturing()
    editText(doc, 'old', 'text', 'an old prompt, edited twice')
    undo.undo()
    expect(readText(doc, 'old', 'text')).toBe('an old prompt, edited')
  })
})
