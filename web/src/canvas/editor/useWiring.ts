// Wiring nodes together: React Flow asks whether a wire may be drawn while it is dragged
// (the catalog's rules), and a dropped wire becomes an edge, or a notice saying why not.
// React Flow never calls onConnect for a wire isValidConnection refused, so a wire dropped on a
// handle it may not join is caught in onConnectEnd: otherwise it would vanish without a word.
import type { Connection, FinalConnectionState, IsValidConnection } from '@xyflow/react'
import { useCallback } from 'react'
import type * as Y from 'yjs'
import type { CatalogIndex } from '../../catalog/catalog'
import { connect, validateConnection } from '../../doc/edits'
import type { ProposedConnection } from '../../doc/graph'

export interface Wiring {
  isValidConnection: IsValidConnection
  onConnect: (connection: Connection) => void
  onConnectEnd: (event: MouseEvent | TouchEvent, state: FinalConnectionState) => void
}

/** React Flow's connection (handles may be undefined) as the document's edits take it. */
function proposed(c: Connection | Parameters<IsValidConnection>[0]): ProposedConnection {
  return {
    source: c.source,
    sourceHandle: c.sourceHandle ?? null,
    target: c.target,
    targetHandle: c.targetHandle ?? null,
  }
}

export function useWiring(
  doc: Y.Doc,
  catalog: CatalogIndex,
  undo: Y.UndoManager,
  setNotice: (notice: string) => void,
): Wiring {
  const isValidConnection = useCallback<IsValidConnection>(
    (c) => validateConnection(doc, catalog, proposed(c)).ok,
    [doc, catalog],
  )
  const onConnect = useCallback(
    (c: Connection) => {
      undo.stopCapturing()
      const result = connect(doc, catalog, proposed(c))
      if (!result.ok) setNotice(`Cannot connect: ${result.reason}`)
    },
    [doc, catalog, undo, setNotice],
  )
  const onConnectEnd = useCallback(
    (_event: MouseEvent | TouchEvent, state: FinalConnectionState) => {
      if (state.isValid !== false || !state.fromHandle || !state.toHandle) return
      const from = { node: state.fromHandle.nodeId, handle: state.fromHandle.id ?? null }
      const to = { node: state.toHandle.nodeId, handle: state.toHandle.id ?? null }
      if (from.node === to.node && from.handle === to.handle) return // let go where it started
      if (state.fromHandle.type === state.toHandle.type) {
        setNotice('Cannot connect: a wire joins an output to an input')
        return
      }
      // A wire may be drawn from either end: the output end is the source.
      const [source, target] = state.fromHandle.type === 'source' ? [from, to] : [to, from]
      const check = validateConnection(doc, catalog, {
        source: source.node,
        sourceHandle: source.handle,
        target: target.node,
        targetHandle: target.handle,
      })
      if (!check.ok) setNotice(`Cannot connect: ${check.reason}`)
    },
    [doc, catalog, setNotice],
  )
  return { isValidConnection, onConnect, onConnectEnd }
}
