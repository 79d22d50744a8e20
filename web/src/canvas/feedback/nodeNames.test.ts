import { describe, expect, test } from 'vitest'
import { nameNodesIn } from './nodeNames'

describe('nameNodesIn', () => {
  const titles = new Map([
    ['n-1a2b', 'Flux image'],
    ['n-1a2b3c', 'Upscale'],
  ])

  test("a skipped node's message names the node it waited for by title", () => {
    expect(nameNodesIn('not run: n-1a2b, which it depends on, failed', titles)).toBe(
      'not run: “Flux image”, which it depends on, failed',
    )
  })

  test('an id that starts like another is not clipped', () => {
    expect(nameNodesIn('n-1a2b3c and n-1a2b', titles)).toBe('“Upscale” and “Flux image”')
  })

  test('text without ids is returned unchanged', () => {
    expect(nameNodesIn('provider answered 503', titles)).toBe('provider answered 503')
    expect(nameNodesIn('a (weird) [regex] text', new Map([['(weird)', 'W']]))).toBe('a “W” [regex] text')
  })
})
