// Who a workflow is shared with, and the owner's changes to it, over the HTTP API:
// GET /api/workflows/{id} (collaborators are listed to the owner), PUT and DELETE
// /api/workflows/{id}/collaborators/{user}, PATCH /api/workflows/{id} {public}.
import { useCallback, useEffect, useState } from 'react'
import { api, type WorkflowDetail } from '../api/client'
import { describeError } from '../ui/errors'
import type { SharePermission } from './invitee'

export interface Sharing {
  detail: WorkflowDetail | null
  error: string | null
  busy: boolean
  invite: (userId: string, permission: SharePermission) => Promise<boolean>
  remove: (userId: string) => Promise<void>
  setPublic: (value: boolean) => Promise<void>
}

export function useSharing(workflowId: string, token: string | null): Sharing {
  const [detail, setDetail] = useState<WorkflowDetail | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  const load = useCallback(async () => {
    setDetail(await api.workflow(token, workflowId))
  }, [token, workflowId])

  useEffect(() => {
    load().catch((cause: unknown) => setError(describeError(cause)))
  }, [load])

  /** Runs one change, then reloads what the server holds (also after a failure); true when it worked. */
  const change = useCallback(
    async (action: () => Promise<unknown>): Promise<boolean> => {
      setBusy(true)
      setError(null)
      let ok = false
      try {
        await action()
        ok = true
      } catch (cause) {
        setError(describeError(cause))
      }
      try {
        await load()
      } catch (cause) {
        if (ok) setError(describeError(cause))
      } finally {
        setBusy(false)
      }
      return ok
    },
    [load],
  )

  return {
    detail,
    error,
    busy,
    invite: (userId, permission) => change(() => api.share(token, workflowId, userId, permission)),
    remove: async (userId) => {
      await change(() => api.unshare(token, workflowId, userId))
    },
    setPublic: async (value) => {
      // Shown at once; the reload after the change (or its failure) brings the server's value.
      setDetail((current) => current && { ...current, public: value })
      await change(() => api.updateWorkflow(token, workflowId, { public: value }))
    },
  }
}
