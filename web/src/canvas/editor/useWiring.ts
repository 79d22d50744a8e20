// Wiring nodes together: React Flow asks whether a wire may be drawn while it is dragged
// (the catalog's rules), and a dropped wire becomes an edge, or a notice saying why not.
import type { Connection, IsValidConnection } from '@xyflow/react'
import { useCallback } from 'react'
import type * as Y from 'yjs'
import type { CatalogIndex } from '../../catalog/catalog'
import { connect, validateConnection } from '../../doc/edits'
import type { ProposedConnection } from '../../doc/graph'

export interface Wiring {
  isValidConnection: IsValidConnection
  onConnect: (connection: Connection) => void
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
  return { isValidConnection, onConnect }
}
