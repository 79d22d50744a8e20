// Who a workflow is shared with, and the owner's changes to it, over the HTTP API:
// GET /api/workflows/{id} (collaborators are listed to the owner), PUT and DELETE
// /api/workflows/{id}/collaborators/{user}, POST, GET and DELETE /api/workflows/{id}/invitations
// (sharing by email), PATCH /api/workflows/{id} {public}.
import { useCallback, useEffect, useState } from 'react'
import { api, type WorkflowDetail, type WorkflowInvitation } from '../api/client'
import { describeError } from '../ui/errors'
import { describeEmailShare, type Invitee, type SharePermission } from './invitee'

export interface Sharing {
  detail: WorkflowDetail | null
  /** Addresses that wait for their first sign-in (listed to the owner). */
  invitations: WorkflowInvitation[]
  error: string | null
  /** What the last invitation by email did. */
  notice: string | null
  busy: boolean
  invite: (invitee: Extract<Invitee, { kind: 'user' | 'email' }>, permission: SharePermission) => Promise<boolean>
  setRole: (userId: string, permission: SharePermission) => Promise<boolean>
  remove: (userId: string) => Promise<void>
  revoke: (email: string) => Promise<void>
  setPublic: (value: boolean) => Promise<void>
}

export function useSharing(workflowId: string, token: string | null): Sharing {
  const [detail, setDetail] = useState<WorkflowDetail | null>(null)
  const [invitations, setInvitations] = useState<WorkflowInvitation[]>([])
  const [error, setError] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  const load = useCallback(async () => {
    const loaded = await api.workflow(token, workflowId)
    setDetail(loaded)
    // Only whoever administers the workflow may list its invitations.
    if (loaded.permission === 'admin') setInvitations((await api.workflowInvitations(token, workflowId)).invitations)
  }, [token, workflowId])

  useEffect(() => {
    load().catch((cause: unknown) => setError(describeError(cause)))
  }, [load])

  /** Runs one change, then reloads what the server holds (also after a failure); true when it worked. */
  const change = useCallback(
    async (action: () => Promise<unknown>): Promise<boolean> => {
      setBusy(true)
      setError(null)
      setNotice(null)
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

  const setRole = (userId: string, permission: SharePermission) =>
    change(() => api.share(token, workflowId, userId, permission))

  return {
    detail,
    invitations,
    error,
    notice,
    busy,
    invite: (invitee, permission) =>
      invitee.kind === 'user'
        ? setRole(invitee.id, permission)
        : change(async () => {
            const outcome = await api.shareByEmail(token, workflowId, invitee.email, permission)
            // `change` cleared the last notice before this runs, and the reload keeps it.
            setNotice(describeEmailShare(invitee.email, outcome))
          }),
    setRole,
    remove: async (userId) => {
      await change(() => api.unshare(token, workflowId, userId))
    },
    revoke: async (email) => {
      await change(() => api.revokeWorkflowInvitation(token, workflowId, email))
    },
    setPublic: async (value) => {
      // Shown at once; the reload after the change (or its failure) brings the server's value.
      setDetail((current) => current && { ...current, public: value })
      await change(() => api.updateWorkflow(token, workflowId, { public: value }))
    },
  }
}
