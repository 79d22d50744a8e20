// What every node on the canvas needs besides its own data, shared through React context.
import { createContext, useContext } from 'react'
import type { NodeValidationError } from '../api/client'
import type { CatalogIndex } from '../catalog/catalog'
import type { Peer } from '../collab/presence'
import type * as Y from 'yjs'
import type { ShownImage } from './images/imageFacts'

export interface CanvasContextValue {
  doc: Y.Doc
  catalog: CatalogIndex
  readOnly: boolean
  /** Appended to asset URLs: GET /assets/{id} needs the caller's token. */
  assetUrl: (url: string) => string
  /** Node id → the collaborators who have it selected. */
  selectedBy: Map<string, Peer[]>
  /** Node id → problems the server found when a run was refused (422). */
  validation: Map<string, NodeValidationError[]>
  /** Node id → its title, to name nodes in messages that the server wrote with ids. */
  nodeTitles: ReadonlyMap<string, string>
  openImage: (image: ShownImage) => void
}

export const CanvasContext = createContext<CanvasContextValue | null>(null)

export function useCanvas(): CanvasContextValue {
  const value = useContext(CanvasContext)
  if (!value) throw new Error('useCanvas outside the canvas')
  return value
}
