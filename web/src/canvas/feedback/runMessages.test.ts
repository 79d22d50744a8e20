import { describe, expect, test } from 'vitest'
import { ACTIVE_RUN_STATUSES } from '../../doc/schema'
import { credits } from '../../ui/credits'
import { queuedMessage, refusedRunMessage, runHasFinished } from './runMessages'

const SERVER_SUMMARY = 'the run is invalid: 0 graph error(s), 1 node(s) with errors'

describe('refusedRunMessage', () => {
  test('one node with problems, no graph errors: no zero count, plain words', () => {
    const body = { error: SERVER_SUMMARY, errors: [], nodeErrors: { 'n-1': { classType: 'blur', errors: [{ type: 'x', message: 'm' }] } } }
    const text = refusedRunMessage(body, SERVER_SUMMARY)
    expect(text).toBe('The graph cannot run: 1 node has a problem, shown on it.')
    expect(text).not.toMatch(/\b0\b|\(s\)/)
  })

  test('several nodes', () => {
    const body = { errors: [], nodeErrors: { a: {}, b: {}, c: {} } }
    expect(refusedRunMessage(body, SERVER_SUMMARY)).toBe('The graph cannot run: 3 nodes have problems, shown on them.')
  })

  test('graph errors only, as the server worded them', () => {
    const body = { errors: [{ type: 'too_many_nodes', message: 'the graph has 600 nodes; at most 500' }], nodeErrors: {} }
    expect(refusedRunMessage(body, SERVER_SUMMARY)).toBe('The graph cannot run: the graph has 600 nodes; at most 500.')
  })

  test('both kinds', () => {
    const body = { errors: ['unknown target n-9'], nodeErrors: { a: {} } }
    expect(refusedRunMessage(body, SERVER_SUMMARY)).toBe('The graph cannot run: unknown target n-9. 1 node has a problem, shown on it.')
  })

  test("an answer without details falls back on the server's message", () => {
    expect(refusedRunMessage(null, 'no nodes to run')).toBe('The graph cannot run: no nodes to run.')
  })
})

describe('credits', () => {
  test('are counted as credits, never as money', () => {
    expect(credits(1)).toBe('1 credit')
    expect(credits(6)).toBe('6 credits')
    expect(credits(0)).toBe('0 credits')
    expect(queuedMessage(7)).toBe('Run queued: at most 7 credits.')
    expect(queuedMessage(7)).not.toContain('¢')
  })
})

describe('runHasFinished', () => {
  const runs = [
    { id: 'r1', status: 'running' },
    { id: 'r2', status: 'succeeded' },
  ]
  test('only a known run in a final state has finished', () => {
    expect(runHasFinished('r1', runs, ACTIVE_RUN_STATUSES)).toBe(false)
    expect(runHasFinished('r2', runs, ACTIVE_RUN_STATUSES)).toBe(true)
    expect(runHasFinished('r3', runs, ACTIVE_RUN_STATUSES)).toBe(false)
  })
})
