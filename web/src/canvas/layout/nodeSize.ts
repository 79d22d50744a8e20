// The size a node will have on the canvas before React Flow has measured it, to place it
// clear of the others. It follows the node's CSS (styles.css: .dojo-node width, .image-slot).
import type { NodeSpec } from '../../catalog/catalog'
import type { Size } from './freeSpot'

export const NODE_WIDTH = 240
/** The fixed frame an image output is shown in (styles.css .image-slot). */
export const IMAGE_SLOT_HEIGHT = 160

const HEADER = 34
const PORT_ROW = 22
const TEXT_AREA = 80

export function estimatedNodeSize(spec: NodeSpec | undefined): Size {
  if (!spec) return { width: NODE_WIDTH, height: 120 }
  const rows = Math.max(spec.inputs.length, spec.outputs.length, 1)
  const text = spec.id === 'text-prompt' ? TEXT_AREA : 24
  const image = hasImageOutput(spec) ? IMAGE_SLOT_HEIGHT + 12 : 0
  return { width: NODE_WIDTH, height: HEADER + rows * PORT_ROW + text + image }
}

export function hasImageOutput(spec: NodeSpec): boolean {
  return spec.outputs.some((port) => port.type === 'image')
}
