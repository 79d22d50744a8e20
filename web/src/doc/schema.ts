// The canvas document schema (docs/document-schema.md), as the editor reads and writes it.
// Four root maps: `nodes` and `edges` (written by people), `results` and `runs` (written by the
// server's executor). Readers here are lenient: an entry another client wrote badly is shown as
// well as it can be, never crashes the editor.
//
// sync-protocol keeps the server's side of this schema in Rust; both are checked against one
// fixture, sync-protocol/schema/canvas-schema.json (here by schema.fixture.test.ts).

import * as Y from 'yjs'
import { isRecord } from '../api/http'

export const NODES = 'nodes'
export const EDGES = 'edges'
export const RESULTS = 'results'
export const RUNS = 'runs'
/** The roots people write; the others are the executor's (the server refuses edits there). */
export const EDITOR_ROOTS = [NODES, EDGES] as const

/** Origin of every change this editor makes; the undo manager tracks this origin only. */
export const LOCAL_ORIGIN = { origin: 'dojo-editor-local' } as const

export interface XY {
  x: number
  y: number
}

export interface CanvasRoots {
  nodes: Y.Map<Y.Map<unknown>>
  edges: Y.Map<Y.Map<unknown>>
  results: Y.Map<unknown>
  runs: Y.Map<unknown>
}

export function roots(doc: Y.Doc): CanvasRoots {
  return {
    nodes: doc.getMap<Y.Map<unknown>>(NODES),
    edges: doc.getMap<Y.Map<unknown>>(EDGES),
    results: doc.getMap<unknown>(RESULTS),
    runs: doc.getMap<unknown>(RUNS),
  }
}

export interface NodeEntry {
  id: string
  type: string
  position: XY
  params: Record<string, unknown>
}

export interface EdgeEntry {
  id: string
  source: string
  sourceHandle: string | null
  target: string
  targetHandle: string | null
}

export const NODE_STATUSES = [
  'idle', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'cached', 'skipped', 'invalid',
] as const

export type NodeStatus = (typeof NODE_STATUSES)[number]

export interface AssetRef {
  id: string
  contentHash?: string
  contentType?: string
  size?: number
}

export type OutputValue =
  | { kind: 'text'; text: string }
  | { kind: 'number'; value: number }
  | { kind: 'asset'; asset: AssetRef; url: string }

export interface NodeResult {
  status: NodeStatus
  /** 0 … 100 */
  progress: number
  outputs: Record<string, OutputValue>
  error: string | null
  runId: string | null
  updatedAt: number
  /** What batch runs produced on this node, oldest first (docs/batches.md). */
  gallery: GalleryEntry[]
  /** What the provider shows of the work while the node runs (docs/document-schema.md). */
  preview: NodePreview | null
}

/** A running node's live preview: the tail of the provider's log and its latest intermediate image. */
export interface NodePreview {
  text: string | null
  image: Extract<OutputValue, { kind: 'asset' }> | null
  at: number
}

/** One output of a batch member in a node's gallery. */
export interface GalleryEntry {
  runId: string
  batchId: string | null
  /** The member's place in its batch. */
  index: number
  /** The member's parameter set: node id → parameter → value (null when too large). */
  params: Record<string, Record<string, unknown>> | null
  outputs: Record<string, OutputValue>
  at: number
}

export interface RunSummary {
  id: string
  status: string
  estimate: number | null
  charged: number | null
  createdAt: number | null
  finishedAt: number | null
  userId: string | null
}

/** How a value is stored: a plain JSON value of that kind, a plain `{x, y}` object, or a Y.Map. */
export type FieldKind = 'string' | 'number' | 'object' | 'array' | 'position' | 'Y.Map' | 'Y.Array'

/**
 * The entries the executor writes, as this editor knows them. It reads them leniently and only in
 * part, so the compiler ties each field list to the reader's result type (a field added to
 * NodeResult or RunSummary must be added here), and the fields it does not read are named too:
 * schema.fixture.test.ts checks the whole against the shared fixture.
 */
export const EXECUTOR_ENTRIES = {
  [RESULTS]: {
    entry: 'Y.Map',
    fields: {
      status: 'string',
      progress: 'number',
      outputs: 'object',
      error: 'string',
      runId: 'string',
      updatedAt: 'number',
      gallery: 'Y.Array',
      preview: 'object',
      // Not read: the editor shows the validation errors of the run request's 422 answer.
      errors: 'array',
    } satisfies Record<keyof NodeResult | 'errors', FieldKind>,
  },
  [RUNS]: {
    entry: 'object',
    fields: {
      id: 'string',
      status: 'string',
      estimate: 'number',
      charged: 'number',
      createdAt: 'number',
      finishedAt: 'number',
      userId: 'string',
      // Not read: the editor does not show which nodes a run planned.
      nodes: 'array',
    } satisfies Record<keyof RunSummary | 'nodes', FieldKind>,
  },
} as const

export function readNode(id: string, value: unknown): NodeEntry | null {
  if (!(value instanceof Y.Map)) return null
  const type = value.get('type')
  if (typeof type !== 'string') return null
  const data = value.get('data')
  const params = data instanceof Y.Map ? (data.toJSON() as Record<string, unknown>) : isRecord(data) ? data : {}
  return { id, type, position: readXY(value.get('position')), params }
}

export function readEdge(id: string, value: unknown): EdgeEntry | null {
  const fields = value instanceof Y.Map ? (value.toJSON() as Record<string, unknown>) : isRecord(value) ? value : null
  if (!fields) return null
  const { source, target, sourceHandle, targetHandle } = fields
  if (typeof source !== 'string' || typeof target !== 'string') return null
  return {
    id,
    source,
    target,
    sourceHandle: typeof sourceHandle === 'string' ? sourceHandle : null,
    targetHandle: typeof targetHandle === 'string' ? targetHandle : null,
  }
}

function readXY(value: unknown): XY {
  if (isRecord(value) && typeof value.x === 'number' && typeof value.y === 'number') {
    return { x: value.x, y: value.y }
  }
  return { x: 0, y: 0 }
}

/** Older names of two statuses, still found in existing documents. */
export const STATUS_ALIASES: Record<string, NodeStatus> = { done: 'succeeded', error: 'failed' }
const STATUSES = new Set<string>(NODE_STATUSES)

export function readResult(value: unknown): NodeResult | null {
  const fields = value instanceof Y.Map ? (value.toJSON() as Record<string, unknown>) : isRecord(value) ? value : null
  if (!fields) return null
  const raw = typeof fields.status === 'string' ? fields.status : 'idle'
  const status: NodeStatus = STATUS_ALIASES[raw] ?? (STATUSES.has(raw) ? (raw as NodeStatus) : 'idle')
  const progress = typeof fields.progress === 'number' ? Math.min(100, Math.max(0, fields.progress)) : 0
  const outputs: Record<string, OutputValue> = {}
  if (isRecord(fields.outputs)) {
    for (const [handle, output] of Object.entries(fields.outputs)) {
      const read = readOutput(output)
      if (read) outputs[handle] = read
    }
  }
  return {
    status,
    progress,
    outputs,
    error: typeof fields.error === 'string' ? fields.error : null,
    runId: typeof fields.runId === 'string' ? fields.runId : null,
    updatedAt: typeof fields.updatedAt === 'number' ? fields.updatedAt : 0,
    gallery: Array.isArray(fields.gallery) ? fields.gallery.flatMap(readGalleryEntry) : [],
    preview: readPreview(fields.preview),
  }
}

/** The longest preview text read (the executor writes at most 1 KiB). */
const MAX_PREVIEW_TEXT = 1024

function readPreview(value: unknown): NodePreview | null {
  if (!isRecord(value)) return null
  const text = typeof value.text === 'string' && value.text.length > 0 ? value.text.slice(-MAX_PREVIEW_TEXT) : null
  const read = readOutput(value.image)
  const image = read?.kind === 'asset' ? read : null
  if (text === null && image === null) return null
  return { text, image, at: typeof value.at === 'number' ? value.at : 0 }
}

/** At most this many gallery entries are read (the executor keeps 50). */
const MAX_GALLERY = 50

function readGalleryEntry(value: unknown, position: number, all: unknown[]): GalleryEntry[] {
  if (!isRecord(value) || typeof value.runId !== 'string' || position < all.length - MAX_GALLERY) return []
  const outputs: Record<string, OutputValue> = {}
  if (isRecord(value.outputs)) {
    for (const [handle, output] of Object.entries(value.outputs)) {
      const read = readOutput(output)
      if (read) outputs[handle] = read
    }
  }
  return [
    {
      runId: value.runId,
      batchId: typeof value.batchId === 'string' ? value.batchId : null,
      index: typeof value.index === 'number' ? value.index : 0,
      params: isRecord(value.params) ? (value.params as GalleryEntry['params']) : null,
      outputs,
      at: typeof value.at === 'number' ? value.at : 0,
    },
  ]
}

function readOutput(value: unknown): OutputValue | null {
  if (typeof value === 'string') return { kind: 'text', text: value }
  if (typeof value === 'number') return { kind: 'number', value }
  if (!isRecord(value)) return null
  if (value.kind === 'text' && typeof value.text === 'string') return { kind: 'text', text: value.text }
  if (value.kind === 'number' && typeof value.value === 'number') return { kind: 'number', value: value.value }
  if (value.kind === 'asset' && isRecord(value.asset) && typeof value.asset.id === 'string') {
    const asset = value.asset as unknown as AssetRef
    const url = typeof value.url === 'string' ? value.url : `/assets/${encodeURIComponent(asset.id)}`
    return { kind: 'asset', asset, url }
  }
  return null
}

export function readRun(id: string, value: unknown): RunSummary | null {
  const fields = value instanceof Y.Map ? (value.toJSON() as Record<string, unknown>) : isRecord(value) ? value : null
  if (!fields) return null
  const num = (v: unknown) => (typeof v === 'number' ? v : null)
  return {
    id: typeof fields.id === 'string' ? fields.id : id,
    status: typeof fields.status === 'string' ? fields.status : 'unknown',
    estimate: num(fields.estimate),
    charged: num(fields.charged),
    createdAt: num(fields.createdAt),
    finishedAt: num(fields.finishedAt),
    userId: typeof fields.userId === 'string' ? fields.userId : null,
  }
}

/**
 * Where a queued run stands, from the two fields the server adds to its summary while it waits
 * (`queuePosition`, `estimatedStartAt`: docs/queue.md). Read apart from RunSummary because only
 * queued runs in open rooms carry them.
 */
export interface QueuePlace {
  position: number
  estimatedStartAt: number | null
}

export function readQueuePlaces(doc: Y.Doc): Map<string, QueuePlace> {
  const places = new Map<string, QueuePlace>()
  roots(doc).runs.forEach((value, id) => {
    const fields = value instanceof Y.Map ? (value.toJSON() as Record<string, unknown>) : isRecord(value) ? value : null
    if (!fields || fields.status !== 'queued' || typeof fields.queuePosition !== 'number') return
    const estimate = typeof fields.estimatedStartAt === 'number' ? fields.estimatedStartAt : null
    places.set(id, { position: fields.queuePosition, estimatedStartAt: estimate })
  })
  return places
}

/** Runs in the document, newest first. */
export function readRuns(doc: Y.Doc): RunSummary[] {
  const runs: RunSummary[] = []
  roots(doc).runs.forEach((value, id) => {
    const run = readRun(id, value)
    if (run) runs.push(run)
  })
  return runs.sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0))
}

export const ACTIVE_RUN_STATUSES = new Set(['queued', 'running'])
