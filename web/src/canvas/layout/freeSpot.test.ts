import { describe, expect, test } from 'vitest'
import { freeSpot, overlaps, type Box } from './freeSpot'

const size = { width: 240, height: 120 }
const boxAt = (x: number, y: number): Box => ({ x, y, ...size })

describe('freeSpot', () => {
  test('an empty canvas: centred on the anchor', () => {
    expect(freeSpot({ x: 500, y: 300 }, size, [])).toEqual({ x: 380, y: 240 })
  })

  test('a spot clear of every node, by at least the gap', () => {
    const occupied = [boxAt(380, 240)]
    const at = freeSpot({ x: 500, y: 300 }, size, occupied, { gap: 24 })
    expect(occupied.some((box) => overlaps({ ...at, ...size }, box, 24))).toBe(false)
  })

  test('nodes added one after another never overlap, and stay near the anchor', () => {
    const placed: Box[] = []
    for (let i = 0; i < 12; i++) placed.push({ ...freeSpot({ x: 0, y: 0 }, size, placed), ...size })
    for (const [i, a] of placed.entries()) {
      for (const b of placed.slice(i + 1)) expect(overlaps(a, b)).toBe(false)
    }
    // Twelve nodes fit within a few node sizes of the anchor, not a long diagonal stack.
    for (const box of placed) {
      expect(Math.abs(box.x + box.width / 2)).toBeLessThan(4 * size.width)
      expect(Math.abs(box.y + box.height / 2)).toBeLessThan(4 * size.height)
    }
  })

  test('the second node goes beside the first rather than below it', () => {
    const first = { ...freeSpot({ x: 0, y: 0 }, size, []), ...size }
    const second = freeSpot({ x: 0, y: 0 }, size, [first])
    expect(second.y).toBe(first.y)
    expect(Math.abs(second.x - first.x)).toBeGreaterThanOrEqual(size.width)
  })

  test('a canvas full around the anchor: the node goes below everything', () => {
    const wall: Box = { x: -10_000, y: -10_000, width: 20_000, height: 20_000 }
    expect(freeSpot({ x: 0, y: 0 }, size, [wall], { gap: 0 })).toEqual({ x: -120, y: 10_000 })
  })
})

describe('overlaps', () => {
  test('touching edges do not overlap; the gap makes them', () => {
    expect(overlaps(boxAt(0, 0), boxAt(240, 0))).toBe(false)
    expect(overlaps(boxAt(0, 0), boxAt(240, 0), 1)).toBe(true)
    expect(overlaps(boxAt(0, 0), boxAt(100, 50))).toBe(true)
  })
})
