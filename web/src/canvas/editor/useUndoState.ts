// Whether there is anything to undo or redo, for the toolbar's buttons. Y.UndoManager has no
// subscribe-and-snapshot API, so its stack events drive React state.
import { useEffect, useState } from 'react'
import type * as Y from 'yjs'

export interface UndoState {
  canUndo: boolean
  canRedo: boolean
}

export function useUndoState(undo: Y.UndoManager): UndoState {
  const [canUndo, setCanUndo] = useState(false)
  const [canRedo, setCanRedo] = useState(false)
  useEffect(() => {
    const update = () => {
      setCanUndo(undo.canUndo())
      setCanRedo(undo.canRedo())
    }
    undo.on('stack-item-added', update)
    undo.on('stack-item-popped', update)
    undo.on('stack-cleared', update)
    return () => {
      undo.off('stack-item-added', update)
      undo.off('stack-item-popped', update)
      undo.off('stack-cleared', update)
    }
  }, [undo])
  return { canUndo, canRedo }
}
