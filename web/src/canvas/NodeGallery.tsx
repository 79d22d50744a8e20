// A node's gallery: the images its batch runs produced (docs/batches.md), newest first, as a
// strip of small thumbnails under the node's own output. Each opens full size; its title says
// which parameter set made it. Only the newest few are drawn so a node keeps its size.
import type { GalleryEntry, OutputValue } from '../doc/schema'
import { useCanvas } from './context'
import { downloadName } from './images/imageFacts'

/** Thumbnails drawn on the node; the rest are counted. */
export const GALLERY_THUMBS = 8

type AssetOutput = Extract<OutputValue, { kind: 'asset' }>

function firstImage(entry: GalleryEntry): AssetOutput | null {
  for (const output of Object.values(entry.outputs)) {
    if (output.kind === 'asset' && (output.asset.contentType ?? 'image/png').startsWith('image/')) return output
  }
  return null
}

/** "prompt.text = fox, flux.seed = 3": what set a member apart. */
export function describeParams(params: GalleryEntry['params']): string {
  if (!params) return ''
  return Object.entries(params)
    .flatMap(([node, values]) => Object.entries(values).map(([name, value]) => `${node}.${name} = ${typeof value === 'string' ? value : JSON.stringify(value)}`))
    .join(', ')
}

export function NodeGallery({ gallery }: { gallery: GalleryEntry[] }) {
  const { assetUrl, openImage } = useCanvas()
  const images = gallery
    .map((entry) => ({ entry, image: firstImage(entry) }))
    .filter((item): item is { entry: GalleryEntry; image: AssetOutput } => item.image !== null)
    .reverse()
  if (images.length === 0) return null
  const shown = images.slice(0, GALLERY_THUMBS)
  return (
    <div className="node-gallery" data-testid="node-gallery">
      <span className="muted small">Gallery ({images.length})</span>
      <div className="gallery-strip">
        {shown.map(({ entry, image }) => {
          const src = assetUrl(image.url)
          const title = `#${entry.index + 1}${entry.params ? `: ${describeParams(entry.params)}` : ''}`
          return (
            <button
              key={entry.runId}
              className="gallery-thumb nodrag"
              title={title}
              onClick={() => openImage({ src, fileName: downloadName(image.asset.id, image.asset.contentType), bytes: image.asset.size })}
            >
              <img src={src} alt={title} data-testid="gallery-image" loading="lazy" />
            </button>
          )
        })}
        {images.length > shown.length && <span className="muted small">+{images.length - shown.length}</span>}
      </div>
    </div>
  )
}
