// The binding between the room's Yjs document and React Flow.
//
// The document is the only source of truth for the graph: React Flow's nodes and edges are
// derived from it on every change, and React Flow's change events are turned into document
// writes. What the binding keeps itself is view state that no collaborator shares: which
// elements this user selected, node sizes React Flow measured, and which nodes are mid-drag.
// Derived objects are reused while nothing about them changed, so React Flow re-renders only
// the nodes that did.

import type { Edge, EdgeChange, Node, NodeChange } from '@xyflow/react'
import type * as Y from 'yjs'
import { moveNode, removeEdges, removeNodes } from './edits'
import { readEdge, readNode, readResult, roots, type CanvasRoots, type NodeResult } from './schema'

export type DojoNodeData = {
  /** The catalog node type (`dev-image`, `blur`…). */
  nodeType: string
  params: Record<string, unknown>
  result: NodeResult | null
}

export type FlowNode = Node<DojoNodeData, 'dojo'>
export type FlowEdge = Edge

export interface CanvasSnapshot {
  nodes: FlowNode[]
  edges: FlowEdge[]
}

interface Cached<T> {
  key: string
  value: T
}

export class CanvasBinding {
  private readonly roots: CanvasRoots
  private readonly listeners = new Set<() => void>()
  private readonly selectedNodes = new Set<string>()
  private readonly selectedEdges = new Set<string>()
  private readonly measured = new Map<string, { width: number; height: number }>()
  private readonly dragging = new Set<string>()
  private nodeCache = new Map<string, Cached<FlowNode>>()
  private edgeCache = new Map<string, Cached<FlowEdge>>()
  private snapshot: CanvasSnapshot = { nodes: [], edges: [] }
  private readonly onDocChange = () => this.rebuild()

  /** When true, React Flow's moves and removals are not written (a read-only viewer). */
  readOnly = false

  constructor(readonly doc: Y.Doc) {
    this.roots = roots(doc)
    this.roots.nodes.observeDeep(this.onDocChange)
    this.roots.edges.observeDeep(this.onDocChange)
    this.roots.results.observeDeep(this.onDocChange)
    this.rebuild()
  }

  destroy(): void {
    this.roots.nodes.unobserveDeep(this.onDocChange)
    this.roots.edges.unobserveDeep(this.onDocChange)
    this.roots.results.unobserveDeep(this.onDocChange)
    this.listeners.clear()
  }

  /** For `useSyncExternalStore`. */
  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  getSnapshot = (): CanvasSnapshot => this.snapshot

  selectedNodeIds(): string[] {
    return [...this.selectedNodes]
  }

  /** Replaces this user's selection (nodes only), e.g. after adding or duplicating. */
  select(nodeIds: string[]): void {
    this.selectedNodes.clear()
    this.selectedEdges.clear()
    for (const id of nodeIds) this.selectedNodes.add(id)
    this.rebuild()
  }

  onNodesChange = (changes: NodeChange<FlowNode>[]): void => {
    const removed: string[] = []
    for (const change of changes) {
      switch (change.type) {
        case 'position':
          if (change.dragging !== undefined) {
            if (change.dragging) this.dragging.add(change.id)
            else this.dragging.delete(change.id)
          }
          if (change.position && !this.readOnly) moveNode(this.doc, change.id, change.position)
          break
        case 'dimensions':
          if (change.dimensions) this.measured.set(change.id, { ...change.dimensions })
          break
        case 'select':
          if (change.selected) this.selectedNodes.add(change.id)
          else this.selectedNodes.delete(change.id)
          break
        case 'remove':
          removed.push(change.id)
          break
        default:
          break
      }
    }
    if (removed.length > 0 && !this.readOnly) removeNodes(this.doc, removed)
    this.rebuild()
  }

  onEdgesChange = (changes: EdgeChange<FlowEdge>[]): void => {
    const removed: string[] = []
    for (const change of changes) {
      if (change.type === 'select') {
        if (change.selected) this.selectedEdges.add(change.id)
        else this.selectedEdges.delete(change.id)
      } else if (change.type === 'remove') {
        removed.push(change.id)
      }
    }
    if (removed.length > 0 && !this.readOnly) removeEdges(this.doc, removed)
    this.rebuild()
  }

  private rebuild(): void {
    const nodes: FlowNode[] = []
    const nodeCache = new Map<string, Cached<FlowNode>>()
    this.roots.nodes.forEach((value, id) => {
      const entry = readNode(id, value)
      if (!entry) return
      const result = readResult(this.roots.results.get(id))
      const measured = this.measured.get(id)
      const key = JSON.stringify([
        entry,
        result,
        this.selectedNodes.has(id),
        this.dragging.has(id),
        measured,
      ])
      const cached = this.nodeCache.get(id)
      if (cached && cached.key === key) {
        nodeCache.set(id, cached)
        nodes.push(cached.value)
        return
      }
      const node: FlowNode = {
        id,
        type: 'dojo',
        position: entry.position,
        data: { nodeType: entry.type, params: entry.params, result },
        selected: this.selectedNodes.has(id),
        dragging: this.dragging.has(id),
        ...(measured ? { measured } : {}),
      }
      nodeCache.set(id, { key, value: node })
      nodes.push(node)
    })
    const edges: FlowEdge[] = []
    const edgeCache = new Map<string, Cached<FlowEdge>>()
    this.roots.edges.forEach((value, id) => {
      const entry = readEdge(id, value)
      if (!entry || !nodeCache.has(entry.source) || !nodeCache.has(entry.target)) return
      const key = JSON.stringify([entry, this.selectedEdges.has(id)])
      const cached = this.edgeCache.get(id)
      if (cached && cached.key === key) {
        edgeCache.set(id, cached)
        edges.push(cached.value)
        return
      }
      const edge: FlowEdge = {
        id,
        source: entry.source,
        target: entry.target,
        sourceHandle: entry.sourceHandle,
        targetHandle: entry.targetHandle,
        selected: this.selectedEdges.has(id),
      }
      edgeCache.set(id, { key, value: edge })
      edges.push(edge)
    })
    // Forget view state of elements that no longer exist (removed here or by someone else).
    for (const id of this.selectedNodes) if (!nodeCache.has(id)) this.selectedNodes.delete(id)
    for (const id of this.measured.keys()) if (!nodeCache.has(id)) this.measured.delete(id)
    for (const id of this.selectedEdges) if (!edgeCache.has(id)) this.selectedEdges.delete(id)
    this.nodeCache = nodeCache
    this.edgeCache = edgeCache
    const changed =
      nodes.length !== this.snapshot.nodes.length ||
      edges.length !== this.snapshot.edges.length ||
      nodes.some((node, i) => node !== this.snapshot.nodes[i]) ||
      edges.some((edge, i) => edge !== this.snapshot.edges[i])
    if (!changed) return
    this.snapshot = { nodes, edges }
    for (const listener of this.listeners) listener()
  }
}
