// Images dropped or pasted onto the canvas become Image input nodes: each file is converted to
// PNG if need be, uploaded for this room with its progress shown, and once stored an
// `image-input` node holding the asset id is added where it was dropped (or in free space),
// one undo step. A refusal (too large, not an image) is shown with the server's reason.
import { useCallback, useEffect, useRef, useState } from 'react'
import type * as Y from 'yjs'
import { uploadImage } from '../../api/client'
import { ApiError } from '../../api/http'
import type { CatalogIndex, NodeSpec } from '../../catalog/catalog'
import type { CanvasBinding } from '../../doc/binding'
import { addNode } from '../../doc/edits'
import { describeError } from '../../ui/errors'
import { asPng, imageFiles, uploadRefusal } from '../images/upload'

/** The catalog's image input node: the node an upload becomes. */
export const IMAGE_INPUT_TYPE = 'image-input'

export interface Upload {
  key: number
  name: string
  /** 0–1 while uploading. */
  fraction: number
  /** Why it was refused; the entry stays until dismissed. */
  error: string | null
}

export interface ImageUploads {
  uploads: Upload[]
  /** Uploads the images among `files`; each becomes a node at `at` (flow coordinates), or in free space. */
  upload: (files: File[], at?: { x: number; y: number }) => void
  dismiss: (key: number) => void
}

interface Options {
  doc: Y.Doc
  binding: CanvasBinding
  undo: Y.UndoManager
  catalog: CatalogIndex
  room: string
  token: string | null
  readOnly: boolean
  /** Where a node goes that was pasted rather than dropped. */
  freeSpot: (spec: NodeSpec) => { x: number; y: number }
}

/** The asset parameter of the image input node (the catalog marks it `asset`). */
function assetParam(spec: NodeSpec): string {
  const marked = spec.params.find((param) => (param as { asset?: boolean }).asset)
  return marked?.name ?? 'asset'
}

export function useImageUploads({ doc, binding, undo, catalog, room, token, readOnly, freeSpot }: Options): ImageUploads {
  const [uploads, setUploads] = useState<Upload[]>([])
  const next = useRef(1)
  const update = useCallback((key: number, change: Partial<Upload>) => {
    setUploads((list) => list.map((u) => (u.key === key ? { ...u, ...change } : u)))
  }, [])

  const upload = useCallback(
    (files: File[], at?: { x: number; y: number }) => {
      const spec = catalog.spec(IMAGE_INPUT_TYPE)
      if (readOnly || !spec) return
      files.forEach((file, index) => {
        const key = next.current++
        const name = file.name || 'pasted image'
        setUploads((list) => [...list, { key, name, fraction: 0, error: null }])
        void (async () => {
          let sent: number | undefined
          try {
            const png = await asPng(file)
            sent = png.size
            const stored = await uploadImage(token, room, png, (fraction) => update(key, { fraction }))
            const base = at ?? freeSpot(spec)
            const position = { x: base.x + index * 24, y: base.y + index * 24 }
            undo.stopCapturing()
            const id = addNode(doc, spec, position, { [assetParam(spec)]: stored.id })
            undo.stopCapturing()
            binding.select([id])
            setUploads((list) => list.filter((u) => u.key !== key))
          } catch (error) {
            const message =
              error instanceof ApiError
                ? uploadRefusal(name, error.status, error.message, sent)
                : uploadRefusal(name, null, describeError(error))
            update(key, { error: message })
          }
        })()
      })
    },
    [binding, catalog, doc, freeSpot, readOnly, room, token, undo, update],
  )

  const dismiss = useCallback((key: number) => setUploads((list) => list.filter((u) => u.key !== key)), [])

  // Pasting an image anywhere but a text field uploads it.
  useEffect(() => {
    const onPaste = (event: ClipboardEvent) => {
      const target = event.target as HTMLElement | null
      if (target?.closest('input, textarea, [contenteditable="true"]')) return
      const files = imageFiles(event.clipboardData)
      if (files.length === 0) return
      event.preventDefault()
      upload(files)
    }
    window.addEventListener('paste', onPaste)
    return () => window.removeEventListener('paste', onPaste)
  }, [upload])

  return { uploads, upload, dismiss }
}
