// The menu a right-click anywhere on a node opens: Duplicate, Delete, Settings, and the two
// partial runs (up to the node, or from it onwards).
import { useEffect, useRef } from 'react'

export interface MenuTarget {
  nodeId: string
  x: number
  y: number
}

interface Props {
  target: MenuTarget
  readOnly: boolean
  onDuplicate: () => void
  onDelete: () => void
  onSettings: () => void
  onRunHere: () => void
  /** Runs the node and everything downstream of it; unchanged upstream nodes come from the cache. */
  onRunFrom: () => void
  onClose: () => void
}

export function ContextMenu({ target, readOnly, onDuplicate, onDelete, onSettings, onRunHere, onRunFrom, onClose }: Props) {
  const ref = useRef<HTMLDivElement>(null)
  useEffect(() => {
    const outside = (event: PointerEvent) => {
      if (ref.current && !ref.current.contains(event.target as Node)) onClose()
    }
    const escape = (event: KeyboardEvent) => event.key === 'Escape' && onClose()
    window.addEventListener('pointerdown', outside, true)
    window.addEventListener('keydown', escape)
    return () => {
      window.removeEventListener('pointerdown', outside, true)
      window.removeEventListener('keydown', escape)
    }
  }, [onClose])
  const choose = (action: () => void) => () => {
    action()
    onClose()
  }
  return (
    <div
      ref={ref}
      className="context-menu"
      role="menu"
      data-testid="context-menu"
      style={{ left: target.x, top: target.y }}
      onContextMenu={(e) => e.preventDefault()}
    >
      <button role="menuitem" disabled={readOnly} onClick={choose(onDuplicate)}>
        Duplicate <kbd>Ctrl+D</kbd>
      </button>
      <button role="menuitem" disabled={readOnly} onClick={choose(onDelete)}>
        Delete <kbd>Del</kbd>
      </button>
      <button role="menuitem" onClick={choose(onSettings)}>
        Settings
      </button>
      <button role="menuitem" disabled={readOnly} onClick={choose(onRunHere)}>
        Run up to here
      </button>
      <button role="menuitem" disabled={readOnly} onClick={choose(onRunFrom)} title="This node and everything after it; unchanged nodes before it come from the cache">
        Run from here
      </button>
    </div>
  )
}
