import { describe, expect, it } from 'vitest'
import { nodeErrors } from '../canvas/useRuns'
import { testIndex } from '../doc/test-catalog'
import { defaultParams, paramProblem, typesCompatible } from './catalog'

describe('catalog', () => {
  it('searches names, ids and categories, every word', () => {
    expect(testIndex.search('blur').map((s) => s.id)).toEqual(['blur'])
    expect(testIndex.search('image dev').map((s) => s.id)).toEqual(['dev-image'])
    expect(testIndex.search('').length).toBe(testIndex.catalog.nodes.length)
  })

  it('finds ports by handle, and the only port when the handle is left out', () => {
    expect(testIndex.input('blur', null)?.name).toBe('image')
    expect(testIndex.output('dev-image', 'image')?.type).toBe('image')
    expect(testIndex.input('blur', 'mask')).toBeUndefined()
  })

  it('checks types as the executor does: equal, or any', () => {
    expect(typesCompatible('image', 'image')).toBe(true)
    expect(typesCompatible('text', 'image')).toBe(false)
    expect(typesCompatible('any', 'image')).toBe(true)
  })

  it('starts nodes with the catalog defaults and explains bad values', () => {
    const blur = testIndex.spec('blur')
    const dalle = testIndex.spec('dall-e-3')
    if (!blur || !dalle) throw new Error('test catalog incomplete')
    expect(defaultParams(blur)).toEqual({ sigma: 2 })
    const sigma = blur.params[0]
    const quality = dalle.params[0]
    if (!sigma || !quality) throw new Error('test catalog incomplete')
    expect(paramProblem(sigma, 50)).toBe('at most 20')
    expect(paramProblem(sigma, 3)).toBeNull()
    expect(paramProblem(quality, 'ultra')).toBe('one of standard, hd')
  })
})

describe('run refusals', () => {
  it('reads nodeErrors of a 422 in ComfyUI shape', () => {
    const errors = nodeErrors({
      code: 'invalid_graph',
      nodeErrors: {
        b1: { classType: 'blur', errors: [{ type: 'required_input_missing', message: 'image is required', details: 'image' }] },
        junk: 'not an object',
      },
    })
    expect([...errors.keys()]).toEqual(['b1'])
    expect(errors.get('b1')).toEqual([{ type: 'required_input_missing', message: 'image is required', details: 'image' }])
  })
})

describe('availability', () => {
  it('reads the server’s availability, assuming nodes run when an older server does not say', async () => {
    const { isAvailable, unavailableReason } = await import('./catalog')
    const blur = testIndex.spec('blur')
    if (!blur) throw new Error('test catalog incomplete')
    expect(isAvailable(blur)).toBe(true)
    expect(unavailableReason(blur)).toBeNull()
    const keyless = { ...blur, available: false, unavailableReason: 'this server has no Replicate key (REPLICATE_API_TOKEN)' }
    expect(isAvailable(keyless)).toBe(false)
    expect(unavailableReason(keyless)).toContain('REPLICATE_API_TOKEN')
    expect(unavailableReason({ ...blur, available: false })).toBe('this server cannot run this node')
  })
})
