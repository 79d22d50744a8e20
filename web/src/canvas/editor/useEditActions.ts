// What the editor's buttons, menus, shortcuts and drops do to the document. Every action is a
// no-op for a read-only collaborator, and each starts a new undo step of its own.
import { useReactFlow } from '@xyflow/react'
import { useCallback, type DragEvent, type RefObject } from 'react'
import type * as Y from 'yjs'
import type { CatalogIndex, NodeSpec } from '../../catalog/catalog'
import type { CanvasBinding, FlowNode } from '../../doc/binding'
import { addNode, allEdges, duplicateNodes, moveNodes, removeNodes } from '../../doc/edits'
import { layeredLayout } from '../layout/autoLayout'
import { FRAME_CLEAR_OF_CONTROLS } from '../layout/viewport'
import { imageFiles } from '../images/upload'
import { freeSpot } from '../layout/freeSpot'
import { estimatedNodeSize, NODE_WIDTH } from '../layout/nodeSize'
import { DRAG_TYPE } from '../Palette'
import type { RunsState } from '../useRuns'

export interface EditActions {
  /** Adds a node at `position` (flow coordinates), or in free space near the middle of the visible canvas. */
  addAt: (spec: NodeSpec, position?: { x: number; y: number }) => void
  duplicate: (ids: string[]) => void
  remove: (ids: string[]) => void
  /** Runs `targets` and what they need, or the whole graph when null. */
  run: (targets: string[] | null) => void
  /** "Run from here": the node and everything downstream of it. */
  runFrom: (nodeId: string) => void
  onDragOver: (event: DragEvent) => void
  onDrop: (event: DragEvent) => void
  /** Lays the canvas out along its wires (dagre), one undo step, and frames the result. */
  autoLayout: () => void
  /** The free spot nearest the middle of the view for a node of `spec`. */
  freeSpot: (spec: NodeSpec) => { x: number; y: number }
}

interface Editing {
  doc: Y.Doc
  binding: CanvasBinding
  undo: Y.UndoManager
  catalog: CatalogIndex
  readOnly: boolean
  runs: RunsState
  /** The canvas element, whose middle is where a node added without a position goes. */
  wrapper: RefObject<HTMLDivElement | null>
  /** Image files dropped on the canvas, and where (flow coordinates). */
  onImages: (files: File[], at: { x: number; y: number }) => void
}

export function useEditActions({ doc, binding, undo, catalog, readOnly, runs, wrapper, onImages }: Editing): EditActions {
  const flow = useReactFlow<FlowNode>()
  // A node added without a position (a palette click) goes to the free spot nearest the middle
  // of the visible canvas, clear of the nodes already there.
  const freeSpotInView = useCallback(
    (spec: NodeSpec) => {
      const box = wrapper.current?.getBoundingClientRect()
      const centre = box ? { x: box.left + box.width / 2, y: box.top + box.height / 2 } : { x: 400, y: 300 }
      const occupied = flow.getNodes().map((node) => ({
        ...node.position,
        width: node.measured?.width ?? NODE_WIDTH,
        height: node.measured?.height ?? estimatedNodeSize(catalog.spec(node.data.nodeType)).height,
      }))
      return freeSpot(flow.screenToFlowPosition(centre), estimatedNodeSize(spec), occupied)
    },
    [catalog, flow, wrapper],
  )
  const addAt = useCallback(
    (spec: NodeSpec, position?: { x: number; y: number }) => {
      if (readOnly) return
      const at = position ?? freeSpotInView(spec)
      undo.stopCapturing()
      const id = addNode(doc, spec, at)
      binding.select([id])
    },
    [binding, doc, readOnly, undo, freeSpotInView],
  )
  const duplicate = useCallback(
    (ids: string[]) => {
      if (readOnly || ids.length === 0) return
      undo.stopCapturing()
      binding.select(duplicateNodes(doc, ids))
    },
    [binding, doc, readOnly, undo],
  )
  const remove = useCallback(
    (ids: string[]) => {
      if (readOnly) return
      undo.stopCapturing()
      removeNodes(doc, ids)
    },
    [doc, readOnly, undo],
  )
  const run = useCallback(
    (targets: string[] | null) => {
      if (!readOnly) void runs.start(targets)
    },
    [readOnly, runs],
  )
  const runFrom = useCallback(
    (nodeId: string) => {
      if (!readOnly) void runs.start(null, nodeId)
    },
    [readOnly, runs],
  )
  const onDragOver = useCallback((event: DragEvent) => {
    event.preventDefault()
    event.dataTransfer.dropEffect = 'copy'
  }, [])
  const onDrop = useCallback(
    (event: DragEvent) => {
      const images = imageFiles(event.dataTransfer)
      if (images.length > 0) {
        event.preventDefault()
        if (!readOnly) onImages(images, flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }))
        return
      }
      const type = event.dataTransfer.getData(DRAG_TYPE)
      const spec = type ? catalog.spec(type) : undefined
      if (!spec) return
      event.preventDefault()
      addAt(spec, flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }))
    },
    [addAt, catalog, flow, onImages, readOnly],
  )
  const autoLayout = useCallback(() => {
    if (readOnly) return
    const placed = flow.getNodes().map((node) => ({
      id: node.id,
      width: node.measured?.width ?? NODE_WIDTH,
      height: node.measured?.height ?? estimatedNodeSize(catalog.spec(node.data.nodeType)).height,
    }))
    if (placed.length === 0) return
    const positions = layeredLayout(placed, allEdges(doc))
    undo.stopCapturing()
    moveNodes(doc, positions)
    undo.stopCapturing()
    // Once React Flow has the new positions, show all of it clear of the controls.
    requestAnimationFrame(() => void flow.fitView({ ...FRAME_CLEAR_OF_CONTROLS, duration: 300 }))
  }, [catalog, doc, flow, readOnly, undo])
  return { addAt, duplicate, remove, run, runFrom, onDragOver, onDrop, autoLayout, freeSpot: freeSpotInView }
}
