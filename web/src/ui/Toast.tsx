// A short message that shows for a few seconds over the canvas and goes by itself: for things
// the editor refused on the spot (a wire it may not draw), where a banner would outstay them.
import { useEffect } from 'react'

const SHOWN_MS = 5_000

export function Toast({ message, onDone }: { message: string; onDone: () => void }) {
  useEffect(() => {
    const timer = setTimeout(onDone, SHOWN_MS)
    return () => clearTimeout(timer)
  }, [message, onDone])
  return (
    <div className="toast" role="alert" data-testid="toast" onClick={onDone}>
      {message}
    </div>
  )
}
