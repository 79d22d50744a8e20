import { describe, expect, test } from 'vitest'
import type { FraudFlag, StaffJob, SupportTicket } from '../api/client'
import {
  ago,
  checkAnswer,
  describeEvidence,
  groupFlags,
  initialAnswer,
  jobCounts,
  ruleLabel,
  shortError,
  staffTicketStatus,
  ticketStatuses,
  ticketsFor,
  verdictsFor,
} from './staff'
import { parseRoute } from '../ui/router'

const ticket = (id: string, status: string, createdAt: number, extra: Partial<SupportTicket> = {}): SupportTicket => ({
  id,
  status,
  createdAt,
  subject: `subject ${id}`,
  body: 'body',
  ...extra,
})

const flag = (id: string, userId: string, rule: string, evidenceAt: number, extra: Partial<FraudFlag> = {}): FraudFlag => ({
  id,
  userId,
  rule,
  evidenceAt,
  createdAt: evidenceAt + 1,
  status: 'open',
  detail: {} as FraudFlag['detail'],
  ...extra,
})

describe('the support queue', () => {
  test('waiting means drafted and open; answered is its own filter', () => {
    expect(ticketStatuses('waiting')).toEqual(['drafted', 'open'])
    expect(ticketStatuses('answered')).toEqual(['answered'])
  })

  test('waiting tickets come oldest first, answered ones most recently answered first', () => {
    const tickets = [
      ticket('c', 'drafted', 30),
      ticket('a', 'open', 10),
      ticket('x', 'answered', 5, { answeredAt: 100 }),
      ticket('b', 'drafted', 20),
      ticket('y', 'answered', 6, { answeredAt: 200 }),
    ]
    expect(ticketsFor('waiting', tickets).map((t) => t.id)).toEqual(['a', 'b', 'c'])
    expect(ticketsFor('answered', tickets).map((t) => t.id)).toEqual(['y', 'x'])
    // The caller's array is not reordered.
    expect(tickets.map((t) => t.id)).toEqual(['c', 'a', 'x', 'b', 'y'])
  })

  test('staff read who wrote the draft; the answer box starts with it', () => {
    expect(staffTicketStatus(ticket('a', 'open', 0))).toMatch(/waiting for the agent/)
    expect(staffTicketStatus(ticket('a', 'drafted', 0, { draftSource: 'fallback' }))).toBe('draft by the template')
    expect(staffTicketStatus(ticket('a', 'drafted', 0, { draftSource: 'model' }))).toBe('draft by the language model')
    expect(staffTicketStatus(ticket('a', 'answered', 0))).toBe('answered')
    expect(initialAnswer(ticket('a', 'drafted', 0, { draft: '  Hello.\n' }))).toBe('Hello.')
    expect(initialAnswer(ticket('a', 'open', 0))).toBe('')
  })

  test('an answer is trimmed, and refused when empty or too long', () => {
    expect(checkAnswer('  ok ')).toEqual({ answer: 'ok' })
    expect(checkAnswer(' \n ')).toEqual({ problem: 'Write an answer first.' })
    expect(checkAnswer('é'.repeat(10_001))).toHaveProperty('problem')
    expect(checkAnswer('e'.repeat(20_000))).toEqual({ answer: 'e'.repeat(20_000) })
  })
})

describe('flagged accounts', () => {
  test('flags are grouped per account, newest evidence first, each rule named once', () => {
    const groups = groupFlags([
      flag('f1', 'u_old', 'spend_spike', 100),
      flag('f2', 'u_new', 'payment_trouble', 300),
      flag('f3', 'u_new', 'shared_payment_source', 500),
      flag('f4', 'u_new', 'payment_trouble', 200),
    ])
    expect(groups.map((g) => g.userId)).toEqual(['u_new', 'u_old'])
    expect(groups[0]?.flags.map((f) => f.id)).toEqual(['f3', 'f2', 'f4'])
    expect(groups[0]?.rules).toEqual(['shared_payment_source', 'payment_trouble'])
    expect(groups[0]?.latestEvidenceAt).toBe(500)
    expect(groupFlags([])).toEqual([])
  })

  test('rules read as words; unknown ones as they are', () => {
    expect(ruleLabel('payment_trouble')).toBe('Payment trouble')
    expect(ruleLabel('new_rule')).toBe('new_rule')
  })

  test('the evidence of each rule reads as sentences', () => {
    expect(
      describeEvidence('payment_trouble', { refunded: 1, failed: 2, disputed: 0, windowHours: 24, threshold: 3 }),
    ).toEqual(['1 refund, 2 failed charges, 0 disputes within 24 h (flagged at 3)'])
    expect(
      describeEvidence('shared_payment_source', { source: 'fp_1', accounts: 3, otherAccounts: ['u_a', 'u_b'], windowDays: 30 }),
    ).toEqual(['One card (fingerprint fp_1) paid for 3 accounts within 30 days', 'Other accounts: u_a, u_b'])
    expect(
      describeEvidence('spend_spike', { spent: 1200, windowHours: 24, averagePerWindow: 12.5, historyDays: 30, factor: 10, minimum: 1000 }),
    ).toEqual(['1200 credits spent in 24 h; average 12.5 per 24 h over the 30 days before', 'Flagged above ×10 the average and at least 1000 credits'])
  })

  test('fields the editor does not know are shown as they are, never hidden', () => {
    expect(describeEvidence('payment_trouble', { refunded: 3, extra: 'x', nested: { a: 1 } })).toEqual([
      '3 refunds, 0 failed charges, 0 disputes',
      'extra: x',
      'nested: {"a":1}',
    ])
    expect(describeEvidence('other_rule', { count: 4 })).toEqual(['count: 4'])
    expect(describeEvidence('spend_spike', null)).toEqual(['Credits spent'])
  })

  test('an open flag is cleared or confirmed; a confirmed one only cleared', () => {
    expect(verdictsFor('open')).toEqual(['cleared', 'confirmed'])
    expect(verdictsFor('confirmed')).toEqual(['cleared'])
    expect(verdictsFor('cleared')).toEqual([])
  })
})

describe('agent jobs', () => {
  test('counts in a fixed order, zero for a status the server did not list', () => {
    expect(jobCounts([{ status: 'failed', count: 2 }, { status: 'queued', count: 5 }, { status: 'paused', count: 1 }])).toEqual([
      { status: 'queued', count: 5 },
      { status: 'running', count: 0 },
      { status: 'succeeded', count: 0 },
      { status: 'failed', count: 2 },
      { status: 'paused', count: 1 },
    ])
  })

  test('a last error is cut to one line', () => {
    const job = { lastError: 'timed out\n  after   30 s' } as StaffJob
    expect(shortError(job)).toBe('timed out after 30 s')
    expect(shortError({ lastError: 'x'.repeat(200) } as StaffJob, 10)).toBe(`${'x'.repeat(9)}…`)
    expect(shortError({} as StaffJob)).toBe('')
  })

  test('ages read in the coarsest unit', () => {
    const now = 10 * 24 * 3_600_000
    expect(ago(now - 5_000, now)).toBe('just now')
    expect(ago(now - 5 * 60_000, now)).toBe('5 min ago')
    expect(ago(now - 3 * 3_600_000, now)).toBe('3 h ago')
    expect(ago(now - 3 * 24 * 3_600_000, now)).toBe('3 d ago')
    expect(ago(now + 1_000, now)).toBe('just now')
  })
})

describe('the route', () => {
  test('/staff is the staff screen; nothing under it is', () => {
    expect(parseRoute('/staff')).toEqual({ page: 'staff' })
    expect(parseRoute('/staff/')).toEqual({ page: 'staff' })
    expect(parseRoute('/staff/x')).toEqual({ page: 'dashboard' })
  })
})
