// The editor: React Flow bound to the room document, with palette, parameter panel, context
// menu, presence, runs and the compose dock around it.
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  useReactFlow,
  type Connection,
  type IsValidConnection,
  type NodeMouseHandler,
} from '@xyflow/react'
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore, type DragEvent } from 'react'
import type { Workflow } from '../api/client'
import type { Session } from '../auth/session'
import type { CatalogIndex, NodeSpec } from '../catalog/catalog'
import type { RoomConnection } from '../collab/connection'
import { colourFor, selectionsByNode, useLocalPresence, usePeers, type PresenceUser } from '../collab/presence'
import type * as Y from 'yjs'
import type { CanvasBinding, FlowNode } from '../doc/binding'
import { addNode, connect, duplicateNodes, removeNodes, validateConnection } from '../doc/edits'
import { navigate } from '../ui/router'
import type { Theme } from '../ui/theme'
import { ComposeDock } from './ComposeDock'
import { ConnectionBadge } from './ConnectionBadge'
import { ContextMenu, type MenuTarget } from './ContextMenu'
import { CanvasContext, type CanvasContextValue } from './context'
import { CreditsDialog } from './CreditsDialog'
import { DojoNode } from './DojoNode'
import { Lightbox } from './Lightbox'
import { DRAG_TYPE, Palette } from './Palette'
import { ParamPanel } from './ParamPanel'
import { Avatars, RemoteCursors } from './Presence'
import { RunHistory } from './RunHistory'
import { SHORTCUTS, useShortcuts } from './useShortcuts'
import { useRuns } from './useRuns'

const nodeTypes = { dojo: DojoNode }

/** A room as the editor uses it: the live connection, its binding to React Flow, and undo. */
export interface OpenRoom {
  connection: RoomConnection
  binding: CanvasBinding
  undo: Y.UndoManager
}

interface Props {
  workflow: Workflow
  catalog: CatalogIndex
  room: OpenRoom
  session: Session
  credits: number
  onRunsFinished: () => void
  theme: Theme
  onToggleTheme: () => void
}

export function CanvasEditor({ workflow, catalog, room, session, credits, onRunsFinished, theme, onToggleTheme }: Props) {
  const { connection, binding, undo } = room
  const { doc, awareness } = connection
  const readOnly = workflow.permission === 'read'
  const flow = useReactFlow<FlowNode>()
  const wrapper = useRef<HTMLDivElement>(null)

  useEffect(() => {
    binding.readOnly = readOnly
  }, [binding, readOnly])
  const { nodes, edges } = useSyncExternalStore(binding.subscribe, binding.getSnapshot)
  const [canUndo, setCanUndo] = useState(false)
  const [canRedo, setCanRedo] = useState(false)
  useEffect(() => {
    const update = () => {
      setCanUndo(undo.canUndo())
      setCanRedo(undo.canRedo())
    }
    undo.on('stack-item-added', update)
    undo.on('stack-item-popped', update)
    undo.on('stack-cleared', update)
    return () => {
      undo.off('stack-item-added', update)
      undo.off('stack-item-popped', update)
      undo.off('stack-cleared', update)
    }
  }, [undo])

  const connectionState = useSyncExternalStore(connection.subscribe, connection.getState)

  // Presence: who I am, where my cursor is, what I selected.
  const name = session.me.name ?? session.me.subject ?? 'Anonymous'
  const me = useMemo<PresenceUser>(
    () => ({ id: session.me.id, name, color: colourFor(`${session.me.id}:${name}`) }),
    [session.me.id, name],
  )
  useLocalPresence(awareness, me)
  const peers = usePeers(awareness)
  const selectedIds = useMemo(() => nodes.filter((n) => n.selected).map((n) => n.id), [nodes])
  useEffect(() => {
    awareness.setLocalStateField('selection', selectedIds)
  }, [awareness, selectedIds])
  const pendingCursor = useRef<{ x: number; y: number } | null>(null)
  const onPointerMove = useCallback(
    (event: React.PointerEvent) => {
      const first = pendingCursor.current === null
      pendingCursor.current = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY })
      if (first) {
        requestAnimationFrame(() => {
          awareness.setLocalStateField('cursor', pendingCursor.current)
          pendingCursor.current = null
        })
      }
    },
    [awareness, flow],
  )
  const onPointerLeave = useCallback(() => awareness.setLocalStateField('cursor', null), [awareness])

  const [menu, setMenu] = useState<MenuTarget | null>(null)
  const [panelOpen, setPanelOpen] = useState(true)
  const [historyOpen, setHistoryOpen] = useState(false)
  const [helpOpen, setHelpOpen] = useState(false)
  const [lightbox, setLightbox] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)

  const runs = useRuns(doc, workflow.room, session.token, onRunsFinished)

  const assetUrl = useCallback(
    (url: string) => (session.token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(session.token)}` : url),
    [session.token],
  )
  const context = useMemo<CanvasContextValue>(
    () => ({
      doc,
      catalog,
      readOnly,
      assetUrl,
      selectedBy: selectionsByNode(peers),
      validation: runs.validation,
      openImage: setLightbox,
    }),
    [doc, catalog, readOnly, assetUrl, peers, runs.validation],
  )

  // Editing actions.
  const addCount = useRef(0)
  const addAt = useCallback(
    (spec: NodeSpec, position?: { x: number; y: number }) => {
      if (readOnly) return
      let at = position
      if (!at) {
        const box = wrapper.current?.getBoundingClientRect()
        const centre = box ? { x: box.left + box.width / 2, y: box.top + box.height / 2 } : { x: 400, y: 300 }
        const shift = (addCount.current++ % 8) * 24
        at = flow.screenToFlowPosition({ x: centre.x - 110 + shift, y: centre.y - 60 + shift })
      }
      undo.stopCapturing()
      const id = addNode(doc, spec, at)
      binding.select([id])
    },
    [binding, doc, flow, readOnly, undo],
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

  useShortcuts({
    undo: () => undo.undo(),
    redo: () => undo.redo(),
    duplicate: () => duplicate(binding.selectedNodeIds()),
    run: () => run(selectedIds.length > 0 ? selectedIds : null),
    selectAll: () => binding.select(nodes.map((n) => n.id)),
    escape: () => {
      setMenu(null)
      setLightbox(null)
      setHelpOpen(false)
    },
  })

  const isValidConnection = useCallback<IsValidConnection>(
    (c) =>
      validateConnection(doc, catalog, {
        source: c.source,
        sourceHandle: c.sourceHandle ?? null,
        target: c.target,
        targetHandle: c.targetHandle ?? null,
      }).ok,
    [doc, catalog],
  )
  const onConnect = useCallback(
    (c: Connection) => {
      undo.stopCapturing()
      const result = connect(doc, catalog, {
        source: c.source,
        sourceHandle: c.sourceHandle ?? null,
        target: c.target,
        targetHandle: c.targetHandle ?? null,
      })
      if (!result.ok) setNotice(`Cannot connect: ${result.reason}`)
    },
    [doc, catalog, undo],
  )
  const onNodeContextMenu = useCallback<NodeMouseHandler<FlowNode>>(
    (event, node) => {
      event.preventDefault()
      if (!node.selected) binding.select([node.id])
      setMenu({ nodeId: node.id, x: event.clientX, y: event.clientY })
    },
    [binding],
  )
  const onDrop = useCallback(
    (event: DragEvent) => {
      const type = event.dataTransfer.getData(DRAG_TYPE)
      const spec = type ? catalog.spec(type) : undefined
      if (!spec) return
      event.preventDefault()
      addAt(spec, flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }))
    },
    [addAt, catalog, flow],
  )

  const panelNode = panelOpen && selectedIds.length === 1 ? nodes.find((n) => n.id === selectedIds[0]) : undefined
  const online = connectionState.kind === 'online'
  const message = notice ?? runs.message

  return (
    <CanvasContext.Provider value={context}>
      <div className="canvas-page" data-testid="canvas-page" data-read-only={readOnly}>
        <header className="topbar">
          <button className="link" onClick={() => navigate('/')} title="All workflows">
            ← Workflows
          </button>
          <h1 className="workflow-title">{workflow.title}</h1>
          <ConnectionBadge state={connectionState} />
          <Avatars me={me} peers={peers} disconnected={!online} />
          <span className="spacer" />
          <span className="credits" data-testid="credits" title="Your credit balance">
            {credits} credits
          </span>
          <button onClick={() => undo.undo()} disabled={!canUndo || readOnly} title="Undo your last change (Ctrl+Z)">
            Undo
          </button>
          <button onClick={() => undo.redo()} disabled={!canRedo || readOnly} title="Redo (Ctrl+Shift+Z)">
            Redo
          </button>
          <button className="primary" data-testid="run" onClick={() => run(null)} disabled={readOnly || runs.starting || nodes.length === 0}>
            Run
          </button>
          <button onClick={() => run(selectedIds)} disabled={readOnly || runs.starting || selectedIds.length === 0} title="Run the selected nodes and what they need">
            Run selected
          </button>
          <button data-testid="cancel" onClick={() => void runs.cancel()} disabled={readOnly || runs.active.length === 0}>
            Cancel
          </button>
          <button onClick={() => setHistoryOpen(!historyOpen)} aria-pressed={historyOpen}>
            Runs
          </button>
          <button onClick={onToggleTheme} title="Switch theme" data-testid="theme-toggle">
            {theme === 'dark' ? '☀' : '☾'}
          </button>
          <button onClick={() => setHelpOpen(!helpOpen)} title="Keyboard shortcuts">
            ?
          </button>
        </header>
        {readOnly && (
          <p className="banner" data-testid="read-only-banner">
            Read-only: you can look and follow along, but not change this workflow.
          </p>
        )}
        {connectionState.kind === 'denied' && (
          <p className="banner error" role="alert" data-testid="access-denied">
            {connectionState.reason}
          </p>
        )}
        {connectionState.kind === 'expired' && (
          <p className="banner error" role="alert" data-testid="session-expired">
            Your session expired. <a href="/">Sign in again</a>; your unsaved edits in this tab are lost when you leave.
          </p>
        )}
        {message && (
          <p className="banner" role="status" data-testid="notice">
            {message}{' '}
            <button className="link" onClick={() => (notice ? setNotice(null) : runs.clearMessage())}>
              dismiss
            </button>
          </p>
        )}
        <div className="workspace">
          <Palette catalog={catalog} disabled={readOnly} onAdd={(spec) => addAt(spec)} />
          <div
            className="flow"
            ref={wrapper}
            onPointerMove={onPointerMove}
            onPointerLeave={onPointerLeave}
            onDragOver={(e) => {
              e.preventDefault()
              e.dataTransfer.dropEffect = 'copy'
            }}
            onDrop={onDrop}
          >
            <ReactFlow<FlowNode>
              nodes={nodes}
              edges={edges}
              nodeTypes={nodeTypes}
              onNodesChange={binding.onNodesChange}
              onEdgesChange={binding.onEdgesChange}
              onConnect={onConnect}
              isValidConnection={isValidConnection}
              onNodeContextMenu={onNodeContextMenu}
              onNodeDragStart={() => undo.stopCapturing()}
              onNodeDoubleClick={() => setPanelOpen(true)}
              nodesDraggable={!readOnly}
              nodesConnectable={!readOnly}
              edgesReconnectable={false}
              deleteKeyCode={readOnly ? null : ['Delete', 'Backspace']}
              colorMode={theme}
              fitView
              fitViewOptions={{ maxZoom: 1 }}
              minZoom={0.1}
              maxZoom={2.5}
              proOptions={{ hideAttribution: true }}
            >
              <Background />
              <Controls />
              <MiniMap pannable zoomable nodeStrokeWidth={3} />
              <RemoteCursors peers={peers} />
            </ReactFlow>
          </div>
          {panelNode && <ParamPanel node={panelNode} onClose={() => setPanelOpen(false)} />}
          {historyOpen && (
            <RunHistory room={workflow.room} token={session.token} live={runs.runs} onClose={() => setHistoryOpen(false)} />
          )}
        </div>
        <ComposeDock
          room={workflow.room}
          token={session.token}
          disabled={readOnly}
          onComposed={(ids) => binding.select(ids)}
        />
        {menu && (
          <ContextMenu
            target={menu}
            readOnly={readOnly}
            onDuplicate={() => duplicate(binding.selectedNodeIds().length > 0 ? binding.selectedNodeIds() : [menu.nodeId])}
            onDelete={() => remove(binding.selectedNodeIds().includes(menu.nodeId) ? binding.selectedNodeIds() : [menu.nodeId])}
            onSettings={() => {
              binding.select([menu.nodeId])
              setPanelOpen(true)
            }}
            onRunHere={() => run([menu.nodeId])}
            onClose={() => setMenu(null)}
          />
        )}
        {lightbox && <Lightbox src={lightbox} onClose={() => setLightbox(null)} />}
        {runs.shortfall && <CreditsDialog shortfall={runs.shortfall} onClose={runs.dismissShortfall} />}
        {helpOpen && (
          <div className="modal-backdrop" onClick={() => setHelpOpen(false)}>
            <div className="modal" role="dialog" aria-label="Keyboard shortcuts">
              <h2>Keyboard shortcuts</h2>
              <table>
                <tbody>
                  {SHORTCUTS.map(([keys, what]) => (
                    <tr key={keys}>
                      <td>
                        <kbd>{keys}</kbd>
                      </td>
                      <td>{what}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </div>
        )}
      </div>
    </CanvasContext.Provider>
  )
}
