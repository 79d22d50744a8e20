import { describe, expect, it } from 'vitest'
import { parseRoute } from '../ui/router'
import { appLink, initialChoices, initialValues, valueOf } from './publishChoices'

describe('app mode in the editor', () => {
  it('routes /app/{id} to the form page, not the canvas', () => {
    expect(parseRoute('/app/app_12ab')).toEqual({ page: 'app', appId: 'app_12ab' })
    expect(parseRoute(appLink('app_x y'))).toEqual({ page: 'app', appId: 'app_x y' })
    expect(parseRoute('/app/')).toEqual({ page: 'dashboard' })
  })

  it('starts the dialog from what was published', () => {
    const { inputs, outputs } = initialChoices({
      inputs: [{ key: 'in1', node: 'gen', param: 'seed', label: 'Seed' }],
      outputs: [{ key: 'out1', node: 'blur', output: 'image', label: 'Result' }],
    })
    expect([...inputs.entries()]).toEqual([['gen.seed', { node: 'gen', name: 'seed', label: 'Seed' }]])
    expect(outputs.get('blur.image')?.label).toBe('Result')
  })

  it('turns what a runner typed into the values the server checks', () => {
    expect(valueOf({ type: 'integer' }, '7')).toBe(7)
    expect(valueOf({ type: 'number' }, '')).toBeNull()
    expect(valueOf({ type: 'integer' }, 'seven')).toBe('seven')
    expect(valueOf({ type: 'string' }, 'a cat')).toBe('a cat')
    const base = { label: 'L', required: false, min: null, max: null, allowed: null, maxLength: null, asset: false }
    expect(
      initialValues([
        { ...base, key: 'in1', type: 'string', default: 'a fox' },
        { ...base, key: 'in2', type: 'integer', default: null },
      ]),
    ).toEqual({ in1: 'a fox', in2: null })
  })
})
