// Pure helpers of the team credits panel: reading a limit typed by an owner or admin, and
// describing a member's spend against it.

/** The server's highest limit (2^53): past it the server refuses, so the editor does too. */
export const MAX_SPENDING_LIMIT = 2 ** 53

/**
 * A limit as typed: empty means "no limit" (`null`); otherwise a whole number of credits from 0
 * to 2^53. `undefined` for anything else, so the form can refuse it before asking the server.
 */
export function parseLimit(text: string): number | null | undefined {
  const trimmed = text.trim()
  if (trimmed === '') return null
  if (!/^\d+$/.test(trimmed)) return undefined
  // Compared exactly: past 2^53 a Number would round a refused value onto an accepted one.
  return BigInt(trimmed) <= BigInt(MAX_SPENDING_LIMIT) ? Number(trimmed) : undefined
}

/** "3 of 10 credits this month", or "3 credits this month (no limit)". */
export function describeSpend(spent: number, limit: number | null | undefined): string {
  const unit = (n: number) => (n === 1 ? 'credit' : 'credits')
  if (limit === null || limit === undefined) return `${spent} ${unit(spent)} this month (no limit)`
  return `${spent} of ${limit} ${unit(limit)} this month`
}
