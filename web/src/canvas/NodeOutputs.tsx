// What a node produced: images in a frame of fixed size (so a node does not grow over its
// neighbours when its image arrives), files as links, text and numbers as lines.
import type { OutputValue } from '../doc/schema'
import { useCanvas } from './context'
import { downloadName, imageFacts } from './images/imageFacts'
import { useNaturalSize } from './images/useNaturalSize'

interface Props {
  outputs: Record<string, OutputValue>
  /** The node makes images: keep their frame even before the first one arrives. */
  imageSlot: boolean
}

const isImage = (output: OutputValue): output is AssetOutput =>
  output.kind === 'asset' && (output.asset.contentType ?? 'image/png').startsWith('image/')

export function NodeOutputs({ outputs, imageSlot }: Props) {
  const entries = Object.entries(outputs)
  const images = entries.filter(([, output]) => isImage(output))
  const others = entries.filter(([, output]) => !isImage(output))
  if (!imageSlot && entries.length === 0) return null
  return (
    <div className="node-outputs">
      {(imageSlot || images.length > 0) && (
        <div className="image-slot">
          {images.length === 0 && <span className="muted small">The image shows here after a run</span>}
          {images.map(([handle, output]) => output.kind === 'asset' && <ImageThumb key={handle} handle={handle} output={output} />)}
        </div>
      )}
      {others.map(([handle, output]) => (
        <OtherOutput key={handle} handle={handle} output={output} />
      ))}
    </div>
  )
}

type AssetOutput = Extract<OutputValue, { kind: 'asset' }>

/** A thumbnail that opens the lightbox, captioned with the image's size. */
function ImageThumb({ handle, output }: { handle: string; output: AssetOutput }) {
  const { assetUrl, openImage } = useCanvas()
  const [pixels, onLoad] = useNaturalSize()
  const src = assetUrl(output.url)
  const facts = imageFacts(pixels, output.asset.size)
  const open = () => openImage({ src, fileName: downloadName(output.asset.id, output.asset.contentType), bytes: output.asset.size })
  return (
    <figure className="thumb-figure">
      <button className="thumb nodrag" title="Open full size" onClick={open}>
        <img src={src} alt={`${handle} output`} data-testid="output-image" loading="lazy" onLoad={onLoad} />
      </button>
      {facts && <figcaption className="muted small" data-testid="output-image-size">{facts}</figcaption>}
    </figure>
  )
}

function OtherOutput({ handle, output }: { handle: string; output: OutputValue }) {
  const { assetUrl } = useCanvas()
  if (output.kind === 'asset') {
    return (
      <a href={assetUrl(output.url)} target="_blank" rel="noreferrer">
        {handle}: {output.asset.contentType ?? 'file'}
      </a>
    )
  }
  return (
    <p className="output-text" data-testid="output-text">
      <strong>{handle}:</strong> {output.kind === 'text' ? output.text : String(output.value)}
    </p>
  )
}
