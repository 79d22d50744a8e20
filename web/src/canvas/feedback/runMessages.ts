// The sentences the editor shows about starting a run. The server's own summary of a refused
// run ("the run is invalid: 0 graph error(s), 1 node(s) with errors") is written for logs; a
// person gets the non-zero counts in plain words instead.
import { isRecord } from '../../api/http'
import { credits } from '../../ui/credits'

export function queuedMessage(estimate: number): string {
  return `Run queued: at most ${credits(estimate)}.`
}

const plural = (n: number, one: string, many: string) => (n === 1 ? `1 ${one}` : `${n} ${many}`)

/**
 * What a 422 answer to "start a run" says: the graph-wide problems as the server worded them,
 * then how many nodes have problems of their own (those are shown on the nodes). Counts of zero
 * are not mentioned; `fallback` (the server's message) is used only when the body lists nothing.
 */
export function refusedRunMessage(body: Record<string, unknown> | null, fallback: string): string {
  const general = Array.isArray(body?.errors) ? body.errors.map(problemText).filter((text) => text !== '') : []
  const nodeCount = isRecord(body?.nodeErrors) ? Object.keys(body.nodeErrors).length : 0
  const parts: string[] = []
  if (general.length > 0) parts.push(general.join('; '))
  if (nodeCount > 0) {
    parts.push(`${plural(nodeCount, 'node has a problem', 'nodes have problems')}, shown on ${nodeCount === 1 ? 'it' : 'them'}`)
  }
  return `The graph cannot run: ${parts.length > 0 ? parts.join('. ') : fallback}.`
}

function problemText(value: unknown): string {
  if (typeof value === 'string') return value
  if (isRecord(value) && typeof value.message === 'string') return value.message
  return ''
}

/** Whether the run `runId` is known and no longer queued or running. */
export function runHasFinished(runId: string, runs: { id: string; status: string }[], active: ReadonlySet<string>): boolean {
  return runs.some((run) => run.id === runId && !active.has(run.status))
}
