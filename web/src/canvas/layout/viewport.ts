// How the view frames nodes: clear of the zoom controls (bottom left) and the minimap (bottom
// right), which are drawn over the canvas and would otherwise hide what was just framed.
import type { FitViewOptions } from '@xyflow/react'

/** styles.css sizes the minimap (.react-flow__minimap) to fit under this bottom margin. */
export const FRAME_CLEAR_OF_CONTROLS: FitViewOptions = {
  padding: { top: '48px', left: '72px', right: '48px', bottom: '176px' },
  maxZoom: 1,
}
