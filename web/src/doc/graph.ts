// Connection rules, checked before an edge is written: ports must exist, types must match as
// the catalog says, no self-loops and no cycles (the executor refuses both).

import type { CatalogIndex } from '../catalog/catalog'
import { typesCompatible } from '../catalog/catalog'
import type { EdgeEntry } from './schema'

export interface ProposedConnection {
  source: string
  sourceHandle: string | null
  target: string
  targetHandle: string | null
}

export type ConnectionCheck = { ok: true } | { ok: false; reason: string }

export function checkConnection(
  catalog: CatalogIndex,
  nodeType: (id: string) => string | undefined,
  edges: EdgeEntry[],
  connection: ProposedConnection,
): ConnectionCheck {
  const { source, target } = connection
  if (source === target) return { ok: false, reason: 'a node cannot feed itself' }
  const sourceType = nodeType(source)
  const targetType = nodeType(target)
  if (!sourceType || !targetType) return { ok: false, reason: 'unknown node' }
  const output = catalog.output(sourceType, connection.sourceHandle)
  const input = catalog.input(targetType, connection.targetHandle)
  if (!output) return { ok: false, reason: `${sourceType} has no output ${connection.sourceHandle ?? ''}` }
  if (!input) return { ok: false, reason: `${targetType} has no input ${connection.targetHandle ?? ''}` }
  if (!typesCompatible(output.type, input.type)) {
    return { ok: false, reason: `a ${output.type} output cannot go into ${article(input.type)} ${input.type} input` }
  }
  if (reaches(edges, target, source)) return { ok: false, reason: 'that would make a cycle' }
  return { ok: true }
}

/** Whether `to` can be reached from `from` following edges downstream. */
export function reaches(edges: EdgeEntry[], from: string, to: string): boolean {
  const downstream = new Map<string, string[]>()
  for (const edge of edges) {
    const list = downstream.get(edge.source) ?? []
    list.push(edge.target)
    downstream.set(edge.source, list)
  }
  const seen = new Set<string>()
  const stack = [from]
  while (stack.length > 0) {
    const node = stack.pop() as string
    if (node === to) return true
    if (seen.has(node)) continue
    seen.add(node)
    stack.push(...(downstream.get(node) ?? []))
  }
  return false
}

/** "a" or "an" before a type name, as it is read aloud. */
function article(word: string): string {
  return /^[aeiou]/i.test(word) ? 'an' : 'a'
}
