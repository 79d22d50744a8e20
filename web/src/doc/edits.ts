// Every change the editor makes to the document. Each runs in one transaction with
// LOCAL_ORIGIN, so collaborators see it whole and the undo manager can take it back.

import * as Y from 'yjs'
import type { CatalogIndex, NodeSpec } from '../catalog/catalog'
import { defaultParams } from '../catalog/catalog'
import { isSharedTextParam } from './sharedText'
import { checkConnection, type ConnectionCheck, type ProposedConnection } from './graph'
import { EDITOR_ROOTS, LOCAL_ORIGIN, readEdge, readNode, roots, type EdgeEntry, type XY } from './schema'
import type { components } from '../api/schema'

export function newId(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6))
  return `${prefix}-${[...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}`
}

function transact(doc: Y.Doc, change: () => void): void {
  doc.transact(change, LOCAL_ORIGIN)
}

/**
 * A node entry. Text parameters (`textParams`) are written as Y.Text, so people can type into
 * them together (doc/sharedText.ts); everything else as plain values.
 */
function nodeMap(
  id: string,
  type: string,
  position: XY,
  params: Record<string, unknown>,
  textParams: ReadonlySet<string> = new Set(),
): Y.Map<unknown> {
  const node = new Y.Map<unknown>()
  node.set('id', id)
  node.set('type', type)
  node.set('position', { x: position.x, y: position.y })
  const data = new Y.Map<unknown>()
  for (const [key, value] of Object.entries(params)) {
    data.set(key, textParams.has(key) && typeof value === 'string' ? new Y.Text(value) : value)
  }
  node.set('data', data)
  return node
}

/** The parameters of `spec` kept as shared text. */
export function textParamsOf(spec: NodeSpec | undefined): Set<string> {
  return new Set((spec?.params ?? []).filter((param) => isSharedTextParam(param)).map((param) => param.name))
}

/** An edge entry; a missing handle is left out rather than stored as null. */
function edgeMap(id: string, source: string, sourceHandle: string | null, target: string, targetHandle: string | null): Y.Map<unknown> {
  const edge = new Y.Map<unknown>()
  edge.set('id', id)
  edge.set('source', source)
  if (sourceHandle) edge.set('sourceHandle', sourceHandle)
  edge.set('target', target)
  if (targetHandle) edge.set('targetHandle', targetHandle)
  return edge
}

/**
 * Adds a node of the given type with the catalog's default parameters (and `params` over them);
 * returns its id.
 */
export function addNode(doc: Y.Doc, spec: NodeSpec, position: XY, params: Record<string, unknown> = {}): string {
  const id = newId('n')
  transact(doc, () =>
    roots(doc).nodes.set(id, nodeMap(id, spec.id, position, { ...defaultParams(spec), ...params }, textParamsOf(spec))),
  )
  return id
}

export function moveNode(doc: Y.Doc, id: string, position: XY): void {
  const node = roots(doc).nodes.get(id)
  if (!(node instanceof Y.Map)) return
  // Replaced as a whole: concurrent moves resolve last-writer-wins, never mixing x and y.
  transact(doc, () => node.set('position', { x: position.x, y: position.y }))
}

/** Moves several nodes in one transaction: one step of the local undo (auto-layout). */
export function moveNodes(doc: Y.Doc, positions: ReadonlyMap<string, XY>): void {
  const { nodes } = roots(doc)
  transact(doc, () => {
    for (const [id, position] of positions) {
      const node = nodes.get(id)
      if (node instanceof Y.Map) node.set('position', { x: position.x, y: position.y })
    }
  })
}

export function setParam(doc: Y.Doc, id: string, key: string, value: unknown): void {
  const node = roots(doc).nodes.get(id)
  if (!(node instanceof Y.Map)) return
  transact(doc, () => {
    let data = node.get('data')
    if (!(data instanceof Y.Map)) {
      data = new Y.Map<unknown>()
      node.set('data', data)
    }
    const params = data as Y.Map<unknown>
    if (value === undefined) params.delete(key)
    else params.set(key, value)
  })
}

/** Removes nodes with the edges attached to them and their results. */
export function removeNodes(doc: Y.Doc, ids: Iterable<string>): void {
  const gone = new Set(ids)
  if (gone.size === 0) return
  const { nodes, edges, results } = roots(doc)
  transact(doc, () => {
    for (const id of gone) {
      nodes.delete(id)
      results.delete(id)
    }
    for (const edge of allEdges(doc)) {
      if (gone.has(edge.source) || gone.has(edge.target)) edges.delete(edge.id)
    }
  })
}

export function removeEdges(doc: Y.Doc, ids: Iterable<string>): void {
  const { edges } = roots(doc)
  transact(doc, () => {
    for (const id of ids) edges.delete(id)
  })
}

export function allEdges(doc: Y.Doc): EdgeEntry[] {
  const list: EdgeEntry[] = []
  roots(doc).edges.forEach((value, id) => {
    const edge = readEdge(id, value)
    if (edge) list.push(edge)
  })
  return list
}

export function nodeTypeOf(doc: Y.Doc, id: string): string | undefined {
  const type = roots(doc).nodes.get(id)?.get('type')
  return typeof type === 'string' ? type : undefined
}

export function validateConnection(doc: Y.Doc, catalog: CatalogIndex, connection: ProposedConnection): ConnectionCheck {
  return checkConnection(catalog, (id) => nodeTypeOf(doc, id), allEdges(doc), connection)
}

/**
 * Wires an output to an input if the catalog allows it. An input takes one wire: an existing
 * wire into the same input is replaced.
 */
export function connect(doc: Y.Doc, catalog: CatalogIndex, connection: ProposedConnection): ConnectionCheck & { id?: string } {
  const check = validateConnection(doc, catalog, connection)
  if (!check.ok) return check
  const targetType = nodeTypeOf(doc, connection.target) as string
  const targetHandle = connection.targetHandle ?? catalog.input(targetType, null)?.name ?? null
  const id = newId('e')
  const { edges } = roots(doc)
  transact(doc, () => {
    for (const edge of allEdges(doc)) {
      const sameInput =
        edge.target === connection.target &&
        (edge.targetHandle ?? catalog.input(targetType, null)?.name ?? null) === targetHandle
      if (sameInput) edges.delete(edge.id)
    }
    edges.set(id, edgeMap(id, connection.source, connection.sourceHandle, connection.target, targetHandle))
  })
  return { ok: true, id }
}

/**
 * Copies nodes (parameters included) next to the originals, with the wires between them.
 * Returns the new ids, in the order of `ids`.
 */
export function duplicateNodes(doc: Y.Doc, ids: string[], offset: XY = { x: 40, y: 40 }): string[] {
  const { nodes, edges } = roots(doc)
  const copies = new Map<string, string>()
  transact(doc, () => {
    for (const id of ids) {
      const node = readNode(id, nodes.get(id))
      if (!node) continue
      const copyId = newId('n')
      copies.set(id, copyId)
      const position = { x: node.position.x + offset.x, y: node.position.y + offset.y }
      nodes.set(copyId, nodeMap(copyId, node.type, position, structuredClone(node.params)))
    }
    for (const edge of allEdges(doc)) {
      const source = copies.get(edge.source)
      const target = copies.get(edge.target)
      if (!source || !target) continue
      const id = newId('e')
      edges.set(id, edgeMap(id, source, edge.sourceHandle, target, edge.targetHandle))
    }
  })
  return ids.flatMap((id) => copies.get(id) ?? [])
}

/** Undo and redo of this editor's own changes to the graph; others' changes stay. */
export function createUndoManager(doc: Y.Doc): Y.UndoManager {
  // The executor's roots are not tracked: undo never takes back a result or a run.
  return new Y.UndoManager(
    EDITOR_ROOTS.map((name) => doc.getMap(name)),
    {
      trackedOrigins: new Set([LOCAL_ORIGIN]),
      captureTimeout: 400,
    },
  )
}

/**
 * One operation of a graph edit, as `POST /api/rooms/{room}/edits` takes them and
 * `POST /api/rooms/{room}/compose?apply=false` plans them (`dojo_sync_protocol::canvas::edits`).
 */
export type EditOp = components['schemas']['EditOp']

/**
 * Applies a graph edit in one local transaction, so that this editor's Undo takes it back as
 * one step (the server checked the plan against the catalog; a node that vanished meanwhile is
 * skipped). New nodes start with the catalog's defaults, as the palette's do. Returns the ids
 * of the nodes added.
 */
export function applyOps(doc: Y.Doc, catalog: CatalogIndex, ops: EditOp[]): string[] {
  const { nodes, edges, results } = roots(doc)
  const added: string[] = []
  const param = (id: string, name: string, value: unknown) => {
    const data = nodes.get(id)?.get('data')
    if (!(data instanceof Y.Map)) return
    if (value === null || value === undefined) data.delete(name)
    else data.set(name, value)
  }
  transact(doc, () => {
    for (const op of ops) {
      switch (op.op) {
        case 'addNode': {
          const id = op.id ?? newId('n')
          const spec = catalog.spec(op.type)
          const params = { ...(spec ? defaultParams(spec) : {}), ...(op.params ?? {}) }
          nodes.set(id, nodeMap(id, op.type, op.position, params, textParamsOf(spec)))
          added.push(id)
          break
        }
        case 'updateNode':
          for (const [name, value] of Object.entries(op.params ?? {})) param(op.node, name, value)
          if (op.position) nodes.get(op.node)?.set('position', { x: op.position.x, y: op.position.y })
          break
        case 'setParam':
          param(op.node, op.name, op.value)
          break
        case 'move':
          nodes.get(op.node)?.set('position', { x: op.position.x, y: op.position.y })
          break
        case 'removeNode':
          nodes.delete(op.node)
          results.delete(op.node)
          for (const edge of allEdges(doc)) {
            if (edge.source === op.node || edge.target === op.node) edges.delete(edge.id)
          }
          break
        case 'connect': {
          if (!nodes.has(op.source) || !nodes.has(op.target)) break
          const id = op.id ?? newId('e')
          edges.set(id, edgeMap(id, op.source, op.sourceHandle ?? null, op.target, op.targetHandle ?? null))
          break
        }
        case 'disconnect':
          edges.delete(op.edge)
          break
      }
    }
  })
  return added
}
