// Starting and cancelling runs, and what the editor shows about them. Live state comes from
// the document (`results` per node, `runs` per run), written by the server's executor; the
// HTTP API is only used to start, cancel and list.
import { useCallback, useEffect, useRef, useState } from 'react'
import type * as Y from 'yjs'
import { api, type NodeValidationError } from '../api/client'
import { ApiError, isRecord } from '../api/http'
import { ACTIVE_RUN_STATUSES, readQueuePlaces, readRuns, roots, type QueuePlace, type RunSummary } from '../doc/schema'
import { describeError } from '../ui/errors'
import { queuedMessage, refusedRunMessage, runHasFinished } from './feedback/runMessages'

export interface CreditShortfall {
  balance: number
  cost: number
  message: string
}

/** The runs' latest message; a "Run queued" one names its run, so it can go when the run ends. */
interface RunNotice {
  text: string
  runId: string | null
}

export interface RunsState {
  runs: RunSummary[]
  active: RunSummary[]
  /** Queued runs' positions and estimated starts, by run id. */
  places: Map<string, QueuePlace>
  validation: Map<string, NodeValidationError[]>
  shortfall: CreditShortfall | null
  message: string | null
  starting: boolean
  /** Runs the targets (null: everything), or with `from` a node and what is downstream of it. */
  start: (targets: string[] | null, from?: string) => Promise<void>
  cancel: () => Promise<void>
  cancelRun: (id: string) => Promise<void>
  moveToFront: (id: string) => Promise<void>
  dismissShortfall: () => void
  clearMessage: () => void
}

const RUNS_MISSING = 'This server has no runs API yet (POST /api/rooms/{room}/runs answered 404): the graph can be edited but not run.'

export function useRuns(doc: Y.Doc, room: string, token: string | null, onFinished: () => void): RunsState {
  const [runs, setRuns] = useState<RunSummary[]>(() => readRuns(doc))
  const [places, setPlaces] = useState<Map<string, QueuePlace>>(() => readQueuePlaces(doc))
  const [validation, setValidation] = useState(new Map<string, NodeValidationError[]>())
  const [shortfall, setShortfall] = useState<CreditShortfall | null>(null)
  const [notice, setNotice] = useState<RunNotice | null>(null)
  const setMessage = useCallback((text: string | null) => setNotice(text === null ? null : { text, runId: null }), [])
  const [starting, setStarting] = useState(false)
  const finishedRef = useRef(onFinished)
  finishedRef.current = onFinished

  useEffect(() => {
    const map = roots(doc).runs
    let activeBefore = new Set(readRuns(doc).filter((r) => ACTIVE_RUN_STATUSES.has(r.status)).map((r) => r.id))
    const update = () => {
      const next = readRuns(doc)
      setRuns(next)
      setPlaces(readQueuePlaces(doc))
      const activeNow = new Set(next.filter((r) => ACTIVE_RUN_STATUSES.has(r.status)).map((r) => r.id))
      if ([...activeBefore].some((id) => !activeNow.has(id))) finishedRef.current()
      activeBefore = activeNow
    }
    map.observe(update)
    return () => map.unobserve(update)
  }, [doc])

  // Problems the server found are shown on the nodes until the graph changes.
  useEffect(() => {
    if (validation.size === 0) return
    const { nodes, edges } = roots(doc)
    const clear = () => setValidation(new Map())
    nodes.observeDeep(clear)
    edges.observeDeep(clear)
    return () => {
      nodes.unobserveDeep(clear)
      edges.unobserveDeep(clear)
    }
  }, [doc, validation])

  const start = useCallback(
    async (targets: string[] | null, from?: string) => {
      setStarting(true)
      setMessage(null)
      setValidation(new Map())
      try {
        const started = await api.startRun(token, room, targets, from)
        setNotice({ text: queuedMessage(started.estimate), runId: started.runId })
      } catch (error) {
        handleStartError(error)
      } finally {
        setStarting(false)
      }
    },
    [room, token, setMessage],
  )

  // "Run queued" is about one run: it goes once that run has finished (whichever comes first,
  // the answer to the request or the document showing the run done).
  useEffect(() => {
    if (notice?.runId && runHasFinished(notice.runId, runs, ACTIVE_RUN_STATUSES)) setNotice(null)
  }, [notice, runs])

  function handleStartError(error: unknown) {
    if (!(error instanceof ApiError)) return setMessage(describeError(error))
    if (error.routeMissing) return setMessage(RUNS_MISSING)
    if (error.status === 402) {
      const balance = numberField(error.body, 'balance')
      const cost = numberField(error.body, 'cost')
      return setShortfall({ balance: balance ?? 0, cost: cost ?? 0, message: error.message })
    }
    if (error.status === 422) {
      setValidation(nodeErrors(error.body))
      return setMessage(refusedRunMessage(error.body, error.message))
    }
    setMessage(describeError(error))
  }

  const active = runs.filter((run) => ACTIVE_RUN_STATUSES.has(run.status))

  const cancel = useCallback(async () => {
    setMessage(null)
    try {
      await Promise.all(active.map((run) => api.cancelRun(token, run.id)))
      setNotice(active.length > 0 ? { text: 'Cancelling…', runId: active[0]?.id ?? null } : { text: 'Nothing is running.', runId: null })
    } catch (error) {
      setMessage(error instanceof ApiError && error.routeMissing ? RUNS_MISSING : describeError(error))
    }
  }, [active, token, setMessage])

  const cancelRun = useCallback(
    async (id: string) => {
      setMessage(null)
      try {
        await api.cancelRun(token, id)
      } catch (error) {
        setMessage(describeError(error))
      }
    },
    [token, setMessage],
  )

  const moveToFront = useCallback(
    async (id: string) => {
      setMessage(null)
      try {
        await api.moveRunToFront(token, id)
      } catch (error) {
        setMessage(describeError(error))
      }
    },
    [token, setMessage],
  )

  return {
    runs,
    active,
    places,
    cancelRun,
    moveToFront,
    validation,
    shortfall,
    message: notice?.text ?? null,
    starting,
    start,
    cancel,
    dismissShortfall: () => setShortfall(null),
    clearMessage: () => setMessage(null),
  }
}

function numberField(body: Record<string, unknown> | null, key: string): number | null {
  const value = body?.[key]
  return typeof value === 'number' ? value : null
}

/** `nodeErrors` of a 422 in ComfyUI's shape (camelCase keys): {nodeId: {classType, errors: [{type, message, details}]}}. */
export function nodeErrors(body: Record<string, unknown> | null): Map<string, NodeValidationError[]> {
  const map = new Map<string, NodeValidationError[]>()
  const byNode = body?.nodeErrors
  if (!isRecord(byNode)) return map
  for (const [nodeId, entry] of Object.entries(byNode)) {
    if (!isRecord(entry) || !Array.isArray(entry.errors)) continue
    const errors = entry.errors
      .filter(isRecord)
      .map((e) => ({
        type: typeof e.type === 'string' ? e.type : 'error',
        message: typeof e.message === 'string' ? e.message : 'invalid',
        ...(typeof e.details === 'string' ? { details: e.details } : {}),
      }))
    if (errors.length > 0) map.set(nodeId, errors)
  }
  return map
}
