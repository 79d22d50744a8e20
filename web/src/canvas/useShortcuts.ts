// Keyboard shortcuts of the canvas. Typing in a field is never taken over.
import { useEffect, useRef } from 'react'

export interface ShortcutActions {
  undo: () => void
  redo: () => void
  duplicate: () => void
  run: () => void
  selectAll: () => void
  escape: () => void
}

export const SHORTCUTS: [string, string][] = [
  ['Ctrl/⌘ Z', 'Undo your last change'],
  ['Ctrl/⌘ Shift Z, Ctrl Y', 'Redo'],
  ['Ctrl/⌘ D', 'Duplicate the selection'],
  ['Delete, Backspace', 'Delete the selection'],
  ['Ctrl/⌘ A', 'Select every node'],
  ['Ctrl/⌘ Enter', 'Run (the selection, or the whole graph)'],
  ['Shift drag', 'Select an area'],
  ['Escape', 'Close menus and dialogs'],
]

function typing(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false
  return target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName)
}

export function useShortcuts(actions: ShortcutActions): void {
  const ref = useRef(actions)
  ref.current = actions
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Escape') return ref.current.escape()
      if (typing(event.target)) return
      const mod = event.ctrlKey || event.metaKey
      if (!mod) return
      const key = event.key.toLowerCase()
      const act = (action: () => void) => {
        event.preventDefault()
        action()
      }
      if (key === 'z' && event.shiftKey) act(ref.current.redo)
      else if (key === 'z') act(ref.current.undo)
      else if (key === 'y') act(ref.current.redo)
      else if (key === 'd') act(ref.current.duplicate)
      else if (key === 'a') act(ref.current.selectAll)
      else if (key === 'enter') act(ref.current.run)
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [])
}
