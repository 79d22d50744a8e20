import { describe, expect, test } from 'vitest'
import { describeSpend, MAX_SPENDING_LIMIT, parseLimit } from './credits'

describe('team credits', () => {
  test('a typed limit is a whole number of credits, or empty for none', () => {
    expect(parseLimit('')).toBeNull()
    expect(parseLimit('  ')).toBeNull()
    expect(parseLimit('0')).toBe(0)
    expect(parseLimit(' 25 ')).toBe(25)
    expect(parseLimit(String(MAX_SPENDING_LIMIT))).toBe(MAX_SPENDING_LIMIT)
    for (const bad of ['-1', '1.5', '1e3', 'ten', '99999999999999999999', '9007199254740993']) expect(parseLimit(bad)).toBeUndefined()
  })

  test('spend reads against the limit', () => {
    expect(describeSpend(3, 10)).toBe('3 of 10 credits this month')
    expect(describeSpend(1, null)).toBe('1 credit this month (no limit)')
    expect(describeSpend(0, 1)).toBe('0 of 1 credit this month')
  })
})
