// What every node on the canvas reads through CanvasContext (see ../context.ts).
import { useCallback, useMemo } from 'react'
import type * as Y from 'yjs'
import type { NodeValidationError } from '../../api/client'
import type { CatalogIndex } from '../../catalog/catalog'
import { selectionsByNode, type Peer } from '../../collab/presence'
import type { CanvasContextValue } from '../context'
import type { ShownImage } from '../images/imageFacts'

interface Inputs {
  doc: Y.Doc
  catalog: CatalogIndex
  readOnly: boolean
  token: string | null
  peers: Peer[]
  validation: Map<string, NodeValidationError[]>
  nodeTitles: ReadonlyMap<string, string>
  openImage: (image: ShownImage) => void
}

export function useCanvasContextValue({ doc, catalog, readOnly, token, peers, validation, nodeTitles, openImage }: Inputs): CanvasContextValue {
  // GET /assets/{id} needs the caller's token, and an <img> cannot send a header.
  const assetUrl = useCallback(
    (url: string) => (token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url),
    [token],
  )
  return useMemo<CanvasContextValue>(
    () => ({
      doc,
      catalog,
      readOnly,
      assetUrl,
      selectedBy: selectionsByNode(peers),
      validation,
      nodeTitles,
      openImage,
    }),
    [doc, catalog, readOnly, assetUrl, peers, validation, nodeTitles, openImage],
  )
}
