// Which of the editor's panels, menus and dialogs are open. Only this user sees them, so they
// are React state and never reach the document.
import { useCallback, useState } from 'react'
import type { MenuTarget } from '../ContextMenu'
import type { ShownImage } from '../images/imageFacts'

export interface Panels {
  /** The node context menu, where it was opened. */
  menu: MenuTarget | null
  setMenu: (menu: MenuTarget | null) => void
  /**
   * The parameter panel. Opened on purpose (double-click, the menu's Settings, the toolbar's
   * Settings), never by selecting: a panel that opens on every click covers the canvas.
   */
  panelOpen: boolean
  setPanelOpen: (open: boolean) => void
  historyOpen: boolean
  setHistoryOpen: (open: boolean) => void
  /** The version history (stored versions, preview, restore). */
  versionsOpen: boolean
  setVersionsOpen: (open: boolean) => void
  helpOpen: boolean
  setHelpOpen: (open: boolean) => void
  shareOpen: boolean
  setShareOpen: (open: boolean) => void
  /** "Ask for help": support tickets. */
  supportOpen: boolean
  setSupportOpen: (open: boolean) => void
  /** "Publish as app": the form others run (docs/apps.md). */
  publishOpen: boolean
  setPublishOpen: (open: boolean) => void
  /** The image shown full size. */
  lightbox: ShownImage | null
  setLightbox: (image: ShownImage | null) => void
  /** A message of the editor's own (a refused wire), shown as a toast for a few seconds. */
  notice: string | null
  setNotice: (notice: string | null) => void
  /** What Escape closes: the menu, the lightbox, the shortcuts help, the share and help dialogs. */
  closeTransient: () => void
}

export function usePanels(): Panels {
  const [menu, setMenu] = useState<MenuTarget | null>(null)
  const [panelOpen, setPanelOpen] = useState(false)
  const [historyOpen, setHistoryOpen] = useState(false)
  const [versionsOpen, setVersionsOpen] = useState(false)
  const [helpOpen, setHelpOpen] = useState(false)
  const [shareOpen, setShareOpen] = useState(false)
  const [supportOpen, setSupportOpen] = useState(false)
  const [publishOpen, setPublishOpen] = useState(false)
  const [lightbox, setLightbox] = useState<ShownImage | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const closeTransient = useCallback(() => {
    setMenu(null)
    setLightbox(null)
    setHelpOpen(false)
    setShareOpen(false)
    setSupportOpen(false)
    setPublishOpen(false)
  }, [])
  return {
    menu,
    setMenu,
    panelOpen,
    setPanelOpen,
    historyOpen,
    setHistoryOpen,
    versionsOpen,
    setVersionsOpen,
    helpOpen,
    setHelpOpen,
    shareOpen,
    setShareOpen,
    supportOpen,
    setSupportOpen,
    publishOpen,
    setPublishOpen,
    lightbox,
    setLightbox,
    notice,
    setNotice,
    closeTransient,
  }
}
