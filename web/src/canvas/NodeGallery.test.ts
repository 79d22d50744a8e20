import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { readResult } from '../doc/schema'
import { describeParams } from './NodeGallery'

describe("a node's gallery", () => {
  it('is read from the results entry, bounded, skipping entries that are not the executor’s', () => {
    const doc = new Y.Doc()
    const results = doc.getMap('results')
    const entry = new Y.Map()
    results.set('flux', entry)
    entry.set('status', 'succeeded')
    const gallery = new Y.Array()
    entry.set('gallery', gallery)
    const item = (i: number) => ({
      runId: `run_${i}`,
      batchId: 'batch_1',
      index: i,
      params: { prompt: { text: `fox ${i}` } },
      outputs: { image: { kind: 'asset', asset: { id: `a${i}`, contentType: 'image/png', size: 3 }, url: `/assets/a${i}` } },
      at: i,
    })
    gallery.push(['not an entry', { outputs: {} }, ...Array.from({ length: 60 }, (_, i) => item(i))])
    const read = readResult(results.get('flux'))
    expect(read?.gallery.length).toBe(50)
    expect(read?.gallery[0]?.runId).toBe('run_10')
    expect(read?.gallery.at(-1)?.outputs.image?.kind).toBe('asset')
    expect(readResult({ status: 'queued' })?.gallery).toEqual([])
  })

  it('names what set a member apart', () => {
    expect(describeParams({ prompt: { text: 'fox' }, flux: { seed: 3 } })).toBe('prompt.text = fox, flux.seed = 3')
    expect(describeParams(null)).toBe('')
  })
})
