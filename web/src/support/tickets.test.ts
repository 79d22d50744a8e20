import { describe, expect, it } from 'vitest'
import { ticketStatusLabel } from './tickets'

describe('support tickets', () => {
  it('shows a drafted ticket as still waiting: the asker never sees drafts', () => {
    expect(ticketStatusLabel('open')).toBe('waiting for our team')
    expect(ticketStatusLabel('drafted')).toBe('waiting for our team')
    expect(ticketStatusLabel('answered')).toBe('answered')
  })
})
