// An image output at full size, with its pixel size and a download button. Escape or a click
// beside the image closes it.
import { useEffect } from 'react'
import { imageFacts, type ShownImage } from './imageFacts'
import { useNaturalSize } from './useNaturalSize'

export function Lightbox({ image, onClose }: { image: ShownImage; onClose: () => void }) {
  const [pixels, onLoad] = useNaturalSize()
  useEffect(() => {
    const escape = (event: KeyboardEvent) => event.key === 'Escape' && onClose()
    window.addEventListener('keydown', escape)
    return () => window.removeEventListener('keydown', escape)
  }, [onClose])
  const facts = imageFacts(pixels, image.bytes)
  return (
    <div className="lightbox" role="dialog" aria-label="Full-size image" data-testid="lightbox" onClick={onClose}>
      <img src={image.src} alt="Full-size output" onLoad={onLoad} onClick={(e) => e.stopPropagation()} />
      <div className="lightbox-bar" onClick={(e) => e.stopPropagation()}>
        <span data-testid="lightbox-size">{facts}</span>
        <a className="button" href={image.src} download={image.fileName} data-testid="lightbox-download">
          Download
        </a>
        <a href={image.src} target="_blank" rel="noreferrer">
          Open in a new tab
        </a>
        <button onClick={onClose}>Close</button>
      </div>
    </div>
  )
}
