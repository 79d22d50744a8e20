// The staff screen's pure logic: which tickets a filter shows and in what order, how a fraud
// flag's rule and evidence read, flags grouped by the account they hold, and the agent queue's
// counts. No I/O here (StaffPage.tsx and its sections fetch); see docs/agents.md for the routes.
import type { FraudFlag, StaffJob, StaffJobCount, SupportTicket } from '../api/client'

/** What the support queue shows: tickets waiting for staff (with or without a draft yet), or answered ones. */
export type TicketFilter = 'waiting' | 'answered'

/** The `status` values of `GET /api/support/queue` a filter reads (the route takes one at a time). */
export function ticketStatuses(filter: TicketFilter): string[] {
  return filter === 'waiting' ? ['drafted', 'open'] : ['answered']
}

/**
 * The tickets a filter shows, in the order staff work through them: waiting ones oldest first
 * (the longest wait comes first), answered ones most recently answered first.
 */
export function ticketsFor(filter: TicketFilter, tickets: SupportTicket[]): SupportTicket[] {
  const wanted = new Set(ticketStatuses(filter))
  const shown = tickets.filter((ticket) => wanted.has(ticket.status))
  if (filter === 'waiting') return shown.sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id))
  return shown.sort((a, b) => (b.answeredAt ?? b.createdAt) - (a.answeredAt ?? a.createdAt) || a.id.localeCompare(b.id))
}

/** A ticket's status as staff read it. */
export function staffTicketStatus(ticket: SupportTicket): string {
  switch (ticket.status) {
    case 'open':
      return 'waiting for the agent’s draft'
    case 'drafted':
      return ticket.draftSource === 'model' ? 'draft by the language model' : 'draft by the template'
    case 'answered':
      return 'answered'
    default:
      return ticket.status
  }
}

/** What the answer box starts with: the agent's draft, trimmed, or nothing yet. */
export function initialAnswer(ticket: SupportTicket): string {
  return ticket.draft?.trim() ?? ''
}

/** The answer as it will be sent, or why it cannot be (the server takes 1-20,000 bytes). */
export function checkAnswer(text: string): { answer: string } | { problem: string } {
  const answer = text.trim()
  if (!answer) return { problem: 'Write an answer first.' }
  if (new TextEncoder().encode(answer).length > 20_000) return { problem: 'The answer is longer than 20,000 bytes.' }
  return { answer }
}

/** A flag's state as the flags list filters it. */
export type FlagFilter = 'open' | 'confirmed' | 'cleared'

const RULES: Record<string, string> = {
  payment_trouble: 'Payment trouble',
  shared_payment_source: 'Shared payment card',
  spend_spike: 'Spending spike',
}

export function ruleLabel(rule: string): string {
  return RULES[rule] ?? rule
}

type Detail = Record<string, unknown>

function num(detail: Detail, key: string): number | null {
  const value = detail[key]
  return typeof value === 'number' && Number.isFinite(value) ? value : null
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`
}

/**
 * The evidence of a flag as sentences, from the `detail` the fraud agent recorded
 * (records/src/fraud.rs). A rule or field this editor does not know is listed as `key: value`,
 * so nothing the server sends is hidden.
 */
export function describeEvidence(rule: string, raw: unknown): string[] {
  const detail: Detail = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Detail) : {}
  const lines: string[] = []
  const known = new Set<string>()
  const use = (...keys: string[]) => keys.forEach((key) => known.add(key))
  if (rule === 'payment_trouble') {
    const [refunded, failed, disputed] = ['refunded', 'failed', 'disputed'].map((key) => num(detail, key) ?? 0)
    const hours = num(detail, 'windowHours')
    const threshold = num(detail, 'threshold')
    lines.push(
      `${plural(refunded ?? 0, 'refund')}, ${plural(failed ?? 0, 'failed charge')}, ${plural(disputed ?? 0, 'dispute')}` +
        (hours !== null ? ` within ${hours} h` : '') +
        (threshold !== null ? ` (flagged at ${threshold})` : ''),
    )
    use('refunded', 'failed', 'disputed', 'windowHours', 'threshold')
  } else if (rule === 'shared_payment_source') {
    const accounts = num(detail, 'accounts')
    const days = num(detail, 'windowDays')
    const source = typeof detail.source === 'string' ? detail.source : null
    lines.push(
      `One card${source ? ` (fingerprint ${source})` : ''} paid for ${accounts !== null ? plural(accounts, 'account') : 'several accounts'}` +
        (days !== null ? ` within ${days} days` : ''),
    )
    const others = Array.isArray(detail.otherAccounts) ? detail.otherAccounts.map(String) : []
    if (others.length > 0) lines.push(`Other accounts: ${others.join(', ')}`)
    use('accounts', 'windowDays', 'source', 'otherAccounts')
  } else if (rule === 'spend_spike') {
    const spent = num(detail, 'spent')
    const hours = num(detail, 'windowHours')
    const average = num(detail, 'averagePerWindow')
    const days = num(detail, 'historyDays')
    lines.push(
      `${spent !== null ? plural(spent, 'credit') : 'Credits'} spent` +
        (hours !== null ? ` in ${hours} h` : '') +
        (average !== null ? `; average ${formatNumber(average)} per ${hours ?? '?'} h` : '') +
        (days !== null ? ` over the ${days} days before` : ''),
    )
    const factor = num(detail, 'factor')
    const minimum = num(detail, 'minimum')
    if (factor !== null || minimum !== null) {
      lines.push(`Flagged above ×${factor ?? '?'} the average and at least ${minimum ?? '?'} credits`)
    }
    use('spent', 'windowHours', 'averagePerWindow', 'historyDays', 'factor', 'minimum')
  }
  for (const [key, value] of Object.entries(detail)) {
    if (!known.has(key)) lines.push(`${key}: ${typeof value === 'string' ? value : JSON.stringify(value)}`)
  }
  return lines
}

function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1)
}

/** One account's flags, as the flags list shows them. */
export interface FlaggedAccount {
  userId: string
  flags: FraudFlag[]
  /** The rules that fired, each once, in the order of the flags. */
  rules: string[]
  /** The newest evidence among the flags (milliseconds). */
  latestEvidenceAt: number
}

/**
 * Flags grouped by the account they are about: the account with the newest evidence first,
 * and within one account its newest flag first.
 */
export function groupFlags(flags: FraudFlag[]): FlaggedAccount[] {
  const byUser = new Map<string, FraudFlag[]>()
  for (const flag of flags) {
    const list = byUser.get(flag.userId)
    if (list) list.push(flag)
    else byUser.set(flag.userId, [flag])
  }
  const accounts = [...byUser].map(([userId, list]): FlaggedAccount => {
    const sorted = [...list].sort((a, b) => b.evidenceAt - a.evidenceAt || b.createdAt - a.createdAt || a.id.localeCompare(b.id))
    return {
      userId,
      flags: sorted,
      rules: [...new Set(sorted.map((flag) => flag.rule))],
      latestEvidenceAt: Math.max(...sorted.map((flag) => flag.evidenceAt)),
    }
  })
  return accounts.sort((a, b) => b.latestEvidenceAt - a.latestEvidenceAt || a.userId.localeCompare(b.userId))
}

/** The verdicts a flag in this state allows (the server answers 409 to the others). */
export function verdictsFor(status: string): ('cleared' | 'confirmed')[] {
  if (status === 'open') return ['cleared', 'confirmed']
  if (status === 'confirmed') return ['cleared']
  return []
}

/** The job queue's statuses in the order shown, each with its count (0 when the server listed none). */
export function jobCounts(counts: StaffJobCount[]): { status: string; count: number }[] {
  const order = ['queued', 'running', 'succeeded', 'failed']
  const known = order.map((status) => ({ status, count: counts.find((c) => c.status === status)?.count ?? 0 }))
  const others = counts.filter((c) => !order.includes(c.status)).map(({ status, count }) => ({ status, count }))
  return [...known, ...others]
}

/** A job's last error cut to a line for the table (the full text is in its title). */
export function shortError(job: StaffJob, max = 120): string {
  const text = (job.lastError ?? '').replace(/\s+/g, ' ').trim()
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

/** How long ago `at` was, in the coarsest unit that fits ("just now", "5 min ago", "3 h ago", "2 d ago"). */
export function ago(at: number, now: number): string {
  const seconds = Math.max(0, Math.round((now - at) / 1000))
  if (seconds < 60) return 'just now'
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes} min ago`
  const hours = Math.floor(minutes / 60)
  if (hours < 48) return `${hours} h ago`
  return `${Math.floor(hours / 24)} d ago`
}
