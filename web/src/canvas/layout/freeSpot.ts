// Where a new node goes: the free spot nearest to where the person is looking, so nodes added
// one after another sit side by side instead of piling up on one another.

export interface XY {
  x: number
  y: number
}

export interface Size {
  width: number
  height: number
}

export interface Box extends XY, Size {}

export interface FreeSpotOptions {
  /** Space kept clear around every existing node. */
  gap?: number
  /** Distance between the candidate spots tried. */
  step?: number
  /** How many steps out from the anchor to look before giving up. */
  reach?: number
}

/**
 * The top-left corner of a `size` box that overlaps none of `occupied` (each grown by `gap`),
 * as close as possible to having its centre at `anchor`. Candidates lie on a grid around the
 * anchor, tried nearest first, distance counted in node sizes: a wide node moves one width
 * sideways before one height down, so nodes fill a row beside each other before stacking.
 * With no free candidate within reach, the box goes below everything.
 */
export function freeSpot(anchor: XY, size: Size, occupied: Box[], options: FreeSpotOptions = {}): XY {
  const { gap = 24, step = 40, reach = 30 } = options
  const origin = { x: anchor.x - size.width / 2, y: anchor.y - size.height / 2 }
  const fits = (at: XY) => occupied.every((box) => !overlaps({ ...at, ...size }, box, gap))
  for (const offset of offsetsNearestFirst(reach, step / size.width, step / size.height)) {
    const at = { x: origin.x + offset.x * step, y: origin.y + offset.y * step }
    if (fits(at)) return at
  }
  const bottom = Math.max(...occupied.map((box) => box.y + box.height))
  return { x: origin.x, y: bottom + gap }
}

/** Whether `a` and `b` overlap once `b` is grown by `gap` on every side. */
export function overlaps(a: Box, b: Box, gap = 0): boolean {
  return (
    a.x < b.x + b.width + gap &&
    a.x + a.width > b.x - gap &&
    a.y < b.y + b.height + gap &&
    a.y + a.height > b.y - gap
  )
}

/** Grid offsets within `reach` steps, nearest first, a step counting `xScale` or `yScale`. */
function offsetsNearestFirst(reach: number, xScale: number, yScale: number): XY[] {
  const offsets: XY[] = []
  for (let y = -reach; y <= reach; y++) for (let x = -reach; x <= reach; x++) offsets.push({ x, y })
  const distance = (o: XY) => Math.hypot(o.x * xScale, o.y * yScale)
  return offsets.sort((a, b) => distance(a) - distance(b) || a.y - b.y || a.x - b.x)
}
