import { useEffect } from 'react'

export function Lightbox({ src, onClose }: { src: string; onClose: () => void }) {
  useEffect(() => {
    const escape = (event: KeyboardEvent) => event.key === 'Escape' && onClose()
    window.addEventListener('keydown', escape)
    return () => window.removeEventListener('keydown', escape)
  }, [onClose])
  return (
    <div className="lightbox" role="dialog" aria-label="Full-size image" data-testid="lightbox" onClick={onClose}>
      <img src={src} alt="Full-size output" />
      <a href={src} target="_blank" rel="noreferrer" onClick={(e) => e.stopPropagation()}>
        Open in a new tab
      </a>
    </div>
  )
}
