// The editor: React Flow bound to the room document, with palette, parameter panel, context
// menu, presence, runs, sharing and the compose dock around it. Each concern lives in ./editor (hooks
// for state and actions, components for the chrome); this component only puts them together.
import { Background, Controls, MiniMap, ReactFlow, type NodeMouseHandler } from '@xyflow/react'
import { useCallback, useEffect, useMemo, useRef, useSyncExternalStore } from 'react'
import type * as Y from 'yjs'
import type { Workflow } from '../api/client'
import type { Session } from '../auth/session'
import type { CatalogIndex } from '../catalog/catalog'
import type { RoomConnection } from '../collab/connection'
import type { CanvasBinding, FlowNode } from '../doc/binding'
import { applyOps } from '../doc/edits'
import { restoreVersion } from '../doc/restore'
import type { Theme } from '../ui/theme'
import { ShareDialog } from '../share/ShareDialog'
import { SupportDialog } from '../support/SupportDialog'
import { PublishAppDialog } from '../app/PublishAppDialog'
import { Toast } from '../ui/Toast'
import { ComposeDock } from './ComposeDock'
import { CanvasContext } from './context'
import { CreditsDialog } from './CreditsDialog'
import { DojoNode } from './DojoNode'
import { Banners } from './editor/Banners'
import { Suggestions } from './editor/Suggestions'
import { NodeMenu } from './editor/NodeMenu'
import { ShortcutsHelp } from './editor/ShortcutsHelp'
import { Toolbar } from './editor/Toolbar'
import { useCanvasContextValue } from './editor/useCanvasContextValue'
import { useCanvasPresence } from './editor/useCanvasPresence'
import { useEditActions } from './editor/useEditActions'
import { useFrameNodes } from './editor/useFrameNodes'
import { useImageUploads } from './editor/useImageUploads'
import { UploadList } from './editor/UploadList'
import { usePanels } from './editor/usePanels'
import { useUndoState } from './editor/useUndoState'
import { useWiring } from './editor/useWiring'
import { useNodeTitles } from './feedback/useNodeTitles'
import { Lightbox } from './images/Lightbox'
import { FRAME_CLEAR_OF_CONTROLS } from './layout/viewport'
import { Palette } from './Palette'
import { ParamPanel } from './ParamPanel'
import { RemoteCursors } from './Presence'
import { RunHistory } from './RunHistory'
import { VersionHistory } from './VersionHistory'
import { useRuns } from './useRuns'
import { useShortcuts } from './useShortcuts'

const nodeTypes = { dojo: DojoNode }

/** Small enough to sit under FRAME_CLEAR_OF_CONTROLS's bottom margin. */
const MINIMAP_SIZE = { width: 180, height: 120 }

/** The minimap draws nodes in their run state's colour (styles.css, per theme). */
const minimapNodeClass = (node: FlowNode) => `status-${node.data.result?.status ?? 'idle'}`

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
  const wrapper = useRef<HTMLDivElement>(null)

  // The document, as React Flow's nodes and edges.
  useEffect(() => {
    binding.readOnly = readOnly
  }, [binding, readOnly])
  const { nodes, edges } = useSyncExternalStore(binding.subscribe, binding.getSnapshot)
  const selectedIds = useMemo(() => nodes.filter((n) => n.selected).map((n) => n.id), [nodes])
  const undoState = useUndoState(undo)
  const connectionState = useSyncExternalStore(connection.subscribe, connection.getState)

  const { me, peers, onPointerMove, onPointerLeave } = useCanvasPresence(awareness, session, selectedIds)
  const panels = usePanels()
  const nodeTitles = useNodeTitles(nodes, catalog)
  const runs = useRuns(doc, workflow.room, session.token, onRunsFinished)
  const context = useCanvasContextValue({
    doc,
    catalog,
    readOnly,
    token: session.token,
    peers,
    validation: runs.validation,
    nodeTitles,
    openImage: panels.setLightbox,
  })
  // Dropped images go to the uploads (declared below: they place nodes with the actions' free spot).
  const onImages = useRef<(files: File[], at: { x: number; y: number }) => void>(() => {})
  const actions = useEditActions({
    doc,
    binding,
    undo,
    catalog,
    readOnly,
    runs,
    wrapper,
    onImages: useCallback((files: File[], at: { x: number; y: number }) => onImages.current(files, at), []),
  })
  const uploads = useImageUploads({
    doc,
    binding,
    undo,
    catalog,
    room: workflow.room,
    token: session.token,
    readOnly,
    freeSpot: actions.freeSpot,
  })
  onImages.current = uploads.upload
  const frameNodes = useFrameNodes(nodes)
  const wiring = useWiring(doc, catalog, undo, panels.setNotice)

  useShortcuts({
    undo: () => undo.undo(),
    redo: () => undo.redo(),
    duplicate: () => actions.duplicate(binding.selectedNodeIds()),
    run: () => actions.run(selectedIds.length > 0 ? selectedIds : null),
    selectAll: () => binding.select(nodes.map((n) => n.id)),
    escape: panels.closeTransient,
  })

  const { setMenu } = panels
  const onNodeContextMenu = useCallback<NodeMouseHandler<FlowNode>>(
    (event, node) => {
      event.preventDefault()
      if (!node.selected) binding.select([node.id])
      setMenu({ nodeId: node.id, x: event.clientX, y: event.clientY })
    },
    [binding, setMenu],
  )

  // The panel stays with the node it was opened for while one node is selected, and closes
  // once the selection is empty or several nodes.
  const { setPanelOpen } = panels
  useEffect(() => {
    if (selectedIds.length !== 1) setPanelOpen(false)
  }, [selectedIds.length, setPanelOpen])

  const panelNode = panels.panelOpen && selectedIds.length === 1 ? nodes.find((n) => n.id === selectedIds[0]) : undefined
  const { menu, notice, setNotice } = panels
  const clearNotice = useCallback(() => setNotice(null), [setNotice])

  return (
    <CanvasContext.Provider value={context}>
      <div className="canvas-page" data-testid="canvas-page" data-read-only={readOnly}>
        <Toolbar
          title={workflow.title}
          connectionState={connectionState}
          me={me}
          peers={peers}
          credits={credits}
          readOnly={readOnly}
          undoState={undoState}
          onUndo={() => undo.undo()}
          onRedo={() => undo.redo()}
          runs={runs}
          nodeCount={nodes.length}
          selectedIds={selectedIds}
          onRun={actions.run}
          historyOpen={panels.historyOpen}
          onToggleHistory={() => panels.setHistoryOpen(!panels.historyOpen)}
          versionsOpen={panels.versionsOpen}
          onToggleVersions={() => panels.setVersionsOpen(!panels.versionsOpen)}
          onAutoLayout={actions.autoLayout}
          settingsOpen={panels.panelOpen}
          onToggleSettings={() => panels.setPanelOpen(!panels.panelOpen)}
          theme={theme}
          onToggleTheme={onToggleTheme}
          onToggleHelp={() => panels.setHelpOpen(!panels.helpOpen)}
          onShare={() => panels.setShareOpen(true)}
          onPublishApp={workflow.permission === 'admin' ? () => panels.setPublishOpen(true) : undefined}
          onAskForHelp={() => panels.setSupportOpen(true)}
        />
        <Banners
          readOnly={readOnly}
          connectionState={connectionState}
          message={runs.message}
          onDismiss={runs.clearMessage}
        />
        {workflow.permission === 'admin' && <Suggestions workflowId={workflow.id} token={session.token} />}
        <div className="workspace">
          <Palette catalog={catalog} disabled={readOnly} onAdd={(spec) => actions.addAt(spec)} />
          <div
            className="flow"
            ref={wrapper}
            onPointerMove={onPointerMove}
            onPointerLeave={onPointerLeave}
            onDragOver={actions.onDragOver}
            onDrop={actions.onDrop}
          >
            <ReactFlow<FlowNode>
              nodes={nodes}
              edges={edges}
              nodeTypes={nodeTypes}
              onNodesChange={binding.onNodesChange}
              onEdgesChange={binding.onEdgesChange}
              onConnect={wiring.onConnect}
              onConnectEnd={wiring.onConnectEnd}
              isValidConnection={wiring.isValidConnection}
              onNodeContextMenu={onNodeContextMenu}
              onNodeDragStart={() => undo.stopCapturing()}
              onNodeDoubleClick={() => panels.setPanelOpen(true)}
              nodesDraggable={!readOnly}
              nodesConnectable={!readOnly}
              edgesReconnectable={false}
              deleteKeyCode={readOnly ? null : ['Delete', 'Backspace']}
              colorMode={theme}
              fitView
              fitViewOptions={FRAME_CLEAR_OF_CONTROLS}
              minZoom={0.1}
              maxZoom={2.5}
              proOptions={{ hideAttribution: true }}
            >
              <Background />
              <Controls />
              <MiniMap pannable zoomable nodeStrokeWidth={2} nodeClassName={minimapNodeClass} style={MINIMAP_SIZE} />
              <RemoteCursors peers={peers} />
            </ReactFlow>
            <UploadList uploads={uploads.uploads} onDismiss={uploads.dismiss} />
          </div>
          {panelNode && <ParamPanel node={panelNode} onClose={() => panels.setPanelOpen(false)} />}
          {panels.versionsOpen && (
            <VersionHistory
              room={workflow.room}
              token={session.token}
              readOnly={readOnly}
              onRestore={(version) => {
                // One step of this person's undo, not merged with what came before or after.
                undo.stopCapturing()
                restoreVersion(doc, version)
                undo.stopCapturing()
                setNotice('Version restored. Undo takes it back.')
              }}
              onClose={() => panels.setVersionsOpen(false)}
            />
          )}
          {panels.historyOpen && (
            <RunHistory
              room={workflow.room}
              token={session.token}
              live={runs.runs}
              places={runs.places}
              onCancel={(id) => void runs.cancelRun(id)}
              onMoveToFront={(id) => void runs.moveToFront(id)}
              onClose={() => panels.setHistoryOpen(false)}
            />
          )}
        </div>
        <ComposeDock
          nameOf={(type) => catalog.spec(type)?.name ?? type}
          room={workflow.room}
          token={session.token}
          disabled={readOnly}
          applyOps={(ops) => {
            // Its own undo step: not merged with an edit made just before or after.
            undo.stopCapturing()
            applyOps(doc, catalog, ops)
            undo.stopCapturing()
          }}
          onComposed={(ids) => {
            binding.select(ids)
            frameNodes(ids)
          }}
        />
        {menu && (
          <NodeMenu
            target={menu}
            readOnly={readOnly}
            binding={binding}
            actions={actions}
            openSettings={() => panels.setPanelOpen(true)}
            onClose={() => setMenu(null)}
          />
        )}
        {panels.lightbox && <Lightbox image={panels.lightbox} onClose={() => panels.setLightbox(null)} />}
        {notice && <Toast message={notice} onDone={clearNotice} />}
        {runs.shortfall && <CreditsDialog shortfall={runs.shortfall} onClose={runs.dismissShortfall} />}
        {panels.shareOpen && <ShareDialog workflow={workflow} token={session.token} onClose={() => panels.setShareOpen(false)} />}
        {panels.supportOpen && <SupportDialog token={session.token} room={workflow.room} onClose={() => panels.setSupportOpen(false)} />}
        {panels.publishOpen && (
          <PublishAppDialog
            workflowId={workflow.id}
            workflowTitle={workflow.title}
            inTeam={Boolean(workflow.teamId)}
            nodes={nodes}
            titles={nodeTitles}
            catalog={catalog}
            token={session.token}
            onClose={() => panels.setPublishOpen(false)}
          />
        )}
        {panels.helpOpen && <ShortcutsHelp onClose={() => panels.setHelpOpen(false)} />}
      </div>
    </CanvasContext.Provider>
  )
}
