// What a node produced: images in a frame of fixed size (so a node does not grow over its
// neighbours when its image arrives), files as links, text and numbers as lines.
import type { OutputValue } from '../doc/schema'
import { useCanvas } from './context'

interface Props {
  outputs: Record<string, OutputValue>
  /** The node makes images: keep their frame even before the first one arrives. */
  imageSlot: boolean
}

const isImage = (output: OutputValue): output is Extract<OutputValue, { kind: 'asset' }> =>
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
          {images.map(([handle, output]) => output.kind === 'asset' && <ImageThumb key={handle} handle={handle} url={output.url} />)}
        </div>
      )}
      {others.map(([handle, output]) => (
        <OtherOutput key={handle} handle={handle} output={output} />
      ))}
    </div>
  )
}

function ImageThumb({ handle, url }: { handle: string; url: string }) {
  const { assetUrl, openImage } = useCanvas()
  const src = assetUrl(url)
  return (
    <button className="thumb nodrag" title="Open full size" onClick={() => openImage(src)}>
      <img src={src} alt={`${handle} output`} data-testid="output-image" loading="lazy" />
    </button>
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
