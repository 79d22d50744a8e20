import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { readResult } from '../doc/schema'
import { lastLines, previewToShow } from './NodePreview'

function resultWith(status: string, preview: unknown) {
  const doc = new Y.Doc()
  const entry = new Y.Map()
  doc.getMap('results').set('flux', entry)
  entry.set('status', status)
  entry.set('preview', preview)
  return readResult(doc.getMap('results').get('flux'))
}

describe("a running node's preview", () => {
  const image = { kind: 'asset', asset: { id: 'asset_1', contentType: 'image/png', size: 3 }, url: '/assets/asset_1' }

  it('is shown while the node runs, with its image as an asset of ours', () => {
    const preview = previewToShow(resultWith('running', { text: 'step 1\nstep 2', image, at: 7 }))
    expect(preview?.text).toBe('step 1\nstep 2')
    expect(preview?.image?.url).toBe('/assets/asset_1')
    expect(preview?.at).toBe(7)
  })

  it('is not shown once the node has a final state, or when it holds nothing readable', () => {
    expect(previewToShow(resultWith('succeeded', { text: 'left behind', at: 1 }))).toBeNull()
    expect(previewToShow(resultWith('running', { text: '', image: 'https://provider.example/x.png', at: 1 }))).toBeNull()
    expect(previewToShow(resultWith('running', 'not an object'))).toBeNull()
    expect(previewToShow(null)).toBeNull()
  })

  it('reads at most 1 KiB of text, from the end', () => {
    const preview = previewToShow(resultWith('running', { text: `${'x'.repeat(5000)}END`, at: 1 }))
    expect(preview?.text?.length).toBe(1024)
    expect(preview?.text?.endsWith('END')).toBe(true)
  })

  it('shows the last non-blank lines of the log', () => {
    expect(lastLines('a\nb\n\nc  \nd\n', 3)).toEqual(['b', 'c', 'd'])
    expect(lastLines('only', 3)).toEqual(['only'])
    expect(lastLines('a\nb', 0)).toEqual([])
  })
})
