// The editor's description of the canvas schema, checked against the fixture the Rust side
// checks its own against (sync-protocol/schema/canvas-schema.json). Derived from the code: the
// entries the editor's edits write, read back from a document; its root, status and executor
// entry constants. Nothing is listed by hand here.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { addNode, connect } from './edits'
import { EDITOR_ROOTS, EXECUTOR_ENTRIES, NODE_STATUSES, STATUS_ALIASES, roots, type FieldKind } from './schema'
import { spec, testIndex } from './test-catalog'

const FIXTURE_PATH = new URL('../../../sync-protocol/schema/canvas-schema.json', import.meta.url)

function fixture(): Record<string, unknown> {
  const { $comment: _, ...rest } = JSON.parse(readFileSync(FIXTURE_PATH, 'utf8')) as Record<string, unknown>
  return rest
}

function kindOf(value: unknown): FieldKind | string {
  if (value instanceof Y.Map) return 'Y.Map'
  if (value instanceof Y.AbstractType) return 'another shared type'
  if (typeof value === 'string') return 'string'
  if (typeof value === 'number') return 'number'
  if (Array.isArray(value)) return 'array'
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort()
    return keys.join() === 'x,y' ? 'position' : 'object'
  }
  return value === null ? 'null' : typeof value
}

function describeEntry(entry: unknown): { entry: string; fields: Record<string, string> } {
  if (!(entry instanceof Y.Map)) return { entry: kindOf(entry), fields: {} }
  const fields: Record<string, string> = {}
  entry.forEach((value, key) => {
    fields[key] = kindOf(value)
  })
  return { entry: 'Y.Map', fields }
}

/** How deep shared types nest under `map` (a root is at 0). */
function typeDepth(map: Y.Map<unknown>): number {
  let deepest = 0
  map.forEach((value) => {
    if (value instanceof Y.Map) deepest = Math.max(deepest, 1 + typeDepth(value))
  })
  return deepest
}

/** How deep plain values nest in `value` (a scalar is at 1), as the server counts them. */
function valueDepth(value: unknown): number {
  // Shared text (a prompt's Y.Text) is one value, however long.
  if (value instanceof Y.Text) return 1
  if (value instanceof Y.Map) {
    let deepest = 0
    value.forEach((inner) => {
      deepest = Math.max(deepest, valueDepth(inner))
    })
    return deepest
  }
  if (value !== null && typeof value === 'object') {
    return 1 + Math.max(0, ...Object.values(value).map(valueDepth))
  }
  return 1
}

function describeEditorSchema(): { description: Record<string, unknown>; valueDepth: number; typeDepth: number } {
  // What the editor writes: a node of every kind the catalog has a wire for, and a wire with
  // both handles (handles are left out when there are none, so every field shows here).
  const doc = new Y.Doc()
  const canvas = roots(doc)
  const source = addNode(doc, spec('text-prompt'), { x: 1, y: 2 })
  const target = addNode(doc, spec('dev-image'), { x: 3, y: 4 })
  const wire = connect(doc, testIndex, { source, sourceHandle: 'text', target, targetHandle: 'prompt' })
  if (!wire.ok || !wire.id) throw new Error('the test catalog allows text → prompt')
  const node = canvas.nodes.get(source)
  const position = node?.get('position')
  const rootNames = [...doc.share.keys()].sort()
  const editorRoots = new Set<string>(EDITOR_ROOTS)
  const description = {
    roots: rootNames,
    executorOnlyRoots: rootNames.filter((name) => !editorRoots.has(name)),
    entries: {
      nodes: describeEntry(node),
      edges: describeEntry(canvas.edges.get(wire.id)),
      ...EXECUTOR_ENTRIES,
    },
    position: Object.keys(position ?? {}).sort(),
    nodeStatuses: [...NODE_STATUSES].sort(),
    legacyNodeStatuses: STATUS_ALIASES,
  }
  return {
    description,
    typeDepth: Math.max(...EDITOR_ROOTS.map((name) => typeDepth(doc.getMap(name)))),
    valueDepth: Math.max(...EDITOR_ROOTS.map((name) => valueDepth(doc.getMap(name)))),
  }
}

describe('the canvas schema', () => {
  it('is described here exactly as in the fixture shared with the Rust side', () => {
    const { limits, ...shared } = fixture()
    const { description, typeDepth } = describeEditorSchema()
    expect(description).toEqual(shared)
    expect(typeDepth).toBe((limits as Record<string, number>).canvasTypeDepth)
  })

  it('is written by the editor within the limits the server enforces', () => {
    const limits = fixture().limits as Record<string, number>
    const written = describeEditorSchema()
    expect(Object.keys(limits).sort()).toEqual(['canvasTypeDepth', 'maxTypeDepth', 'maxValueDepth'])
    expect(written.typeDepth).toBeLessThanOrEqual(limits.maxTypeDepth as number)
    expect(written.valueDepth).toBeLessThanOrEqual(limits.maxValueDepth as number)
  })
})
