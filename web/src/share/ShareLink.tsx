// The canvas link, to copy and send. It opens the canvas for whoever has access: the people
// invited, and, when the workflow is public, anyone signed in (read-only).
import { useState } from 'react'

export function ShareLink({ url }: { url: string }) {
  const [copied, setCopied] = useState<'yes' | 'failed' | null>(null)
  async function copy() {
    try {
      await navigator.clipboard.writeText(url)
      setCopied('yes')
    } catch {
      // No clipboard (insecure origin, denied permission): the link is selected to copy by hand.
      setCopied('failed')
    }
  }
  return (
    <div className="share-link">
      <input aria-label="Link to this canvas" readOnly value={url} onFocus={(e) => e.currentTarget.select()} data-testid="share-url" />
      <button onClick={() => void copy()}>Copy link</button>
      {copied === 'yes' && <span className="muted small" role="status">Copied</span>}
      {copied === 'failed' && <span className="muted small" role="status">Select the link and copy it (Ctrl+C)</span>}
    </div>
  )
}
