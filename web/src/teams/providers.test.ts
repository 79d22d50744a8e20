import { describe, expect, it } from 'vitest'
import { maskedKey, PROVIDERS, providerLabel } from './providers'

describe('provider keys', () => {
  it('masks everything but the last four characters the server sent', () => {
    expect(maskedKey('wxyz')).toBe('••••wxyz')
    expect(maskedKey('')).toBe('••••••••')
  })

  it('labels the known providers and passes others through', () => {
    expect(PROVIDERS.map(providerLabel)).toEqual(['OpenAI', 'Replicate', 'fal', 'Stability AI'])
    expect(providerLabel('someday')).toBe('someday')
  })
})
