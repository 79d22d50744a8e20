// The room's stored versions (GET /api/rooms/{room}/versions), newest first. One can be
// previewed read-only (its document from GET …/versions/{id}, drawn with the editor's own
// nodes in a canvas nobody can edit) and restored: the difference is applied here as one local
// change (doc/restore.ts), so everyone sees it and this person's Undo takes it back.
import { Background, ReactFlow, ReactFlowProvider } from '@xyflow/react'
import { useEffect, useMemo, useState, useSyncExternalStore } from 'react'
import type * as Y from 'yjs'
import { api, type Version } from '../api/client'
import { CanvasBinding, type FlowNode } from '../doc/binding'
import { versionDoc } from '../doc/restore'
import { roots } from '../doc/schema'
import { describeError } from '../ui/errors'
import { CanvasContext, useCanvas } from './context'
import { DojoNode } from './DojoNode'
import { byteSize } from './images/imageFacts'

const nodeTypes = { dojo: DojoNode }

interface Props {
  room: string
  token: string | null
  readOnly: boolean
  /** Applies the version to the live canvas as one undoable change. */
  onRestore: (version: Y.Doc) => void
  onClose: () => void
}

export function VersionHistory({ room, token, readOnly, onRestore, onClose }: Props) {
  const [versions, setVersions] = useState<Version[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [preview, setPreview] = useState<{ version: Version; doc: Y.Doc } | null>(null)
  const [loading, setLoading] = useState<number | null>(null)

  useEffect(() => {
    let cancelled = false
    api
      .versions(token, room)
      .then((list) => !cancelled && setVersions(list))
      .catch((e: unknown) => !cancelled && setError(describeError(e)))
    return () => {
      cancelled = true
    }
  }, [room, token])

  async function open(version: Version) {
    setLoading(version.id)
    setError(null)
    try {
      const bytes = await api.version(token, room, version.id)
      setPreview({ version, doc: versionDoc(bytes) })
    } catch (e) {
      setError(describeError(e))
    } finally {
      setLoading(null)
    }
  }

  return (
    <aside className="run-history version-history" aria-label="Version history" data-testid="version-history">
      <header>
        <h2>Versions</h2>
        <button className="icon" aria-label="Close version history" onClick={onClose}>
          ✕
        </button>
      </header>
      <p className="muted small">
        The server keeps a version each time it compacts the canvas’s history. Preview one, then restore it as a
        change of yours (Undo takes it back).
      </p>
      {error && <p className="node-error">{error}</p>}
      {versions === null && !error && <p className="muted small">Loading…</p>}
      {versions?.length === 0 && <p className="muted small" data-testid="no-versions">No versions stored yet.</p>}
      <ol>
        {versions?.map((version) => (
          <li key={version.id} data-testid="version" data-version-id={version.id}>
            <span>{new Date(version.createdAt).toLocaleString()}</span>
            <span className="muted small">{byteSize(version.sizeBytes)}</span>
            <button onClick={() => void open(version)} disabled={loading !== null}>
              {loading === version.id ? 'Opening…' : 'Preview'}
            </button>
          </li>
        ))}
      </ol>
      {preview && (
        <VersionPreview
          version={preview.version}
          doc={preview.doc}
          readOnly={readOnly}
          onRestore={() => {
            onRestore(preview.doc)
            setPreview(null)
          }}
          onClose={() => setPreview(null)}
        />
      )}
    </aside>
  )
}

/** The version drawn read-only, with the editor's own node look, in a dialog. */
function VersionPreview({
  version,
  doc,
  readOnly,
  onRestore,
  onClose,
}: {
  version: Version
  doc: Y.Doc
  readOnly: boolean
  onRestore: () => void
  onClose: () => void
}) {
  const outer = useCanvas()
  const binding = useMemo(() => {
    const made = new CanvasBinding(doc)
    made.readOnly = true
    return made
  }, [doc])
  useEffect(() => () => binding.destroy(), [binding])
  const { nodes, edges } = useSyncExternalStore(binding.subscribe, binding.getSnapshot)
  // The preview's nodes read this document, and nothing in it can be edited.
  const context = useMemo(
    () => ({ ...outer, doc, readOnly: true, validation: new Map(), selectedBy: new Map() }),
    [outer, doc],
  )
  const counts = `${roots(doc).nodes.size} nodes, ${roots(doc).edges.size} wires`
  return (
    <div className="modal-backdrop" role="presentation">
      <div className="modal version-preview" role="dialog" aria-label="Version preview" data-testid="version-preview">
        <header className="dialog-header">
          <h2>
            Version of {new Date(version.createdAt).toLocaleString()} <span className="muted small">({counts})</span>
          </h2>
          <button className="icon" aria-label="Close preview" onClick={onClose}>
            ✕
          </button>
        </header>
        <div className="version-canvas">
          <CanvasContext.Provider value={context}>
            <ReactFlowProvider>
              <ReactFlow<FlowNode>
                nodes={nodes}
                edges={edges}
                nodeTypes={nodeTypes}
                nodesDraggable={false}
                nodesConnectable={false}
                elementsSelectable={false}
                deleteKeyCode={null}
                fitView
                proOptions={{ hideAttribution: true }}
              >
                <Background />
              </ReactFlow>
            </ReactFlowProvider>
          </CanvasContext.Provider>
        </div>
        <footer className="version-actions">
          <button onClick={onClose}>Close</button>
          <button className="primary" data-testid="restore-version" disabled={readOnly} onClick={onRestore}>
            Restore this version
          </button>
        </footer>
      </div>
    </div>
  )
}
