import { describe, expect, test } from 'vitest'
import { composeSummary } from './ComposeDock'

describe('composeSummary', () => {
  test('names the language model when it planned', () => {
    expect(composeSummary({ nodes: ['a', 'b', 'c'], edges: ['e1', 'e2'], planner: 'llm' })).toBe(
      'Added 3 nodes and 2 wires, planned by the language model.',
    )
  })

  test('names the parser, and says why the model was not used', () => {
    const result = { nodes: ['a'], edges: [], planner: 'parser' as const, fallback: 'OpenAI answered HTTP 503' }
    expect(composeSummary(result)).toBe(
      'Added 1 node and 0 wires, planned by the built-in parser (the language model was not used: OpenAI answered HTTP 503).',
    )
  })

  test('names the parser alone when no model is configured', () => {
    expect(composeSummary({ nodes: ['a', 'b'], edges: ['e'], planner: 'parser' })).toBe(
      'Added 2 nodes and 1 wire, planned by the built-in parser.',
    )
  })

  test('says which named node cannot run here and what was used instead', () => {
    const result = {
      nodes: ['a', 'b', 'c'],
      edges: ['e1', 'e2'],
      planner: 'parser' as const,
      substitutions: [{ asked: 'flux', used: 'dev', reason: 'this server has no Replicate key (REPLICATE_API_TOKEN), so Flux Pro cannot run here' }],
    }
    const names: Record<string, string> = { flux: 'Flux Pro', dev: 'Dev image generator' }
    expect(composeSummary(result, (type) => names[type] ?? type)).toBe(
      'Added 3 nodes and 2 wires, planned by the built-in parser. Used Dev image generator instead of Flux Pro: this server has no Replicate key (REPLICATE_API_TOKEN), so Flux Pro cannot run here.',
    )
  })
})
