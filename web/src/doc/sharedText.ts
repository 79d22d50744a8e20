// Text parameters (prompts, system messages, negative prompts) as shared text: a `Y.Text` in
// the node's `data` map, so two people typing into one prompt both keep their characters (each
// keystroke is an insertion or deletion at a place in the text, not a new value for the whole
// parameter). New nodes get a Y.Text for each such parameter; a document with the older plain
// string keeps working, and the first edit here turns the string into a Y.Text (migration on
// first edit). Readers (the editor's `readNode`, the executor's `read_graph`) take the text's
// string either way.

import * as Y from 'yjs'
import type { Param } from '../catalog/catalog'
import { LOCAL_ORIGIN, roots } from './schema'

/** Free text longer than a label: a string without a list of allowed values, not an asset id. */
export function isSharedTextParam(param: Param & { asset?: boolean }): boolean {
  return (
    param.type === 'string' &&
    param.allowed === undefined &&
    param.asset !== true &&
    (param.maxLength === undefined || param.maxLength > 200)
  )
}

/** One edit that turns `before` into `after`: at `index`, `remove` characters go and `insert` comes. */
export interface TextChange {
  index: number
  remove: number
  insert: string
}

/**
 * The smallest single change from `before` to `after` (common prefix and suffix kept). With
 * `caret` (where the caret is in `after`, e.g. just after what was typed), a change inside a run
 * of equal characters is put where it was made: "aa" → "aaa" typed at the start is an insertion
 * at 0, not at 2. That decides what the new characters stick to when others type nearby.
 */
export function textChange(before: string, after: string, caret?: number): TextChange {
  let start = 0
  const shortest = Math.min(before.length, after.length)
  while (start < shortest && before.charCodeAt(start) === after.charCodeAt(start)) start++
  if (caret !== undefined) start = Math.max(0, Math.min(start, caret - Math.max(0, after.length - before.length)))
  let end = 0
  while (
    end < shortest - start &&
    before.charCodeAt(before.length - 1 - end) === after.charCodeAt(after.length - 1 - end)
  ) {
    end++
  }
  return { index: start, remove: before.length - start - end, insert: after.slice(start, after.length - end) }
}

/**
 * Where a caret at `caret` goes when someone else's `change` is applied: after text inserted
 * before it, back by text removed before it, and staying put for text inserted right at it
 * (so two people typing at one place each keep typing after their own characters).
 */
export function moveCaret(caret: number, change: TextChange): number {
  if (change.index >= caret) return caret
  const removedBefore = Math.min(change.remove, caret - change.index)
  return caret - removedBefore + change.insert.length
}

/**
 * Where a caret at `caret` goes when a Y.Text changes by `delta` (a Yjs text event's delta, in
 * the positions of the text before it): exact, unlike a diff of two strings, which cannot tell
 * which of two equal neighbouring characters was typed. Same rule as `moveCaret`.
 */
export function moveCaretByDelta(caret: number, delta: ReadonlyArray<{ insert?: unknown; retain?: number; delete?: number }>): number {
  let index = 0
  let moved = caret
  for (const op of delta) {
    if (op.retain !== undefined) index += op.retain
    else if (op.delete !== undefined) {
      if (index < caret) moved -= Math.min(op.delete, caret - index)
      index += op.delete
    } else if (op.insert !== undefined) {
      const length = typeof op.insert === 'string' ? op.insert.length : 1
      if (index < caret) moved += length
    }
  }
  return Math.max(0, moved)
}

/** The parameter's value in the document: its Y.Text, a plain value, or undefined. */
export function paramValue(doc: Y.Doc, nodeId: string, name: string): unknown {
  const data = roots(doc).nodes.get(nodeId)?.get('data')
  return data instanceof Y.Map ? data.get(name) : undefined
}

/** The parameter's current text, whether a Y.Text or a plain string (or nothing). */
export function readText(doc: Y.Doc, nodeId: string, name: string): string {
  const data = roots(doc).nodes.get(nodeId)?.get('data')
  const value = data instanceof Y.Map ? data.get(name) : undefined
  if (value instanceof Y.Text) return value.toString()
  return typeof value === 'string' ? value : ''
}

/**
 * Makes the parameter's text `next` (`caret`: where the caret is in it, after the edit), as one
 * local transaction: the difference is applied to its
 * Y.Text (a plain string, or nothing, becomes a Y.Text first: the migration on first edit).
 */
export function editText(doc: Y.Doc, nodeId: string, name: string, next: string, caret?: number): void {
  const node = roots(doc).nodes.get(nodeId)
  if (!(node instanceof Y.Map)) return
  doc.transact(() => {
    let data = node.get('data')
    if (!(data instanceof Y.Map)) {
      data = new Y.Map<unknown>()
      node.set('data', data)
    }
    const params = data as Y.Map<unknown>
    const current = params.get(name)
    if (!(current instanceof Y.Text)) {
      params.set(name, new Y.Text(next))
      return
    }
    const change = textChange(current.toString(), next, caret)
    if (change.remove > 0) current.delete(change.index, change.remove)
    if (change.insert !== '') current.insert(change.index, change.insert)
  }, LOCAL_ORIGIN)
}
