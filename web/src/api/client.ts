// The dojo-server HTTP API as typed functions. Paths, parameters and bodies are checked against
// schema.ts, generated from the server's OpenAPI document (`npm run api:generate`; CI fails
// when it no longer matches the server), so a renamed field breaks the build, not the editor.

import type { Catalog } from '../catalog/catalog'
import { ApiError, auth, call, client, isRecord, NetworkError, uuid } from './http'
import type { components, paths } from './schema'

type Schemas = components['schemas']

export type Me = Schemas['MeBody']
export type Permission = Schemas['PermissionName']
export type Workflow = Schemas['WorkflowBody']
/** Someone a workflow is shared with, as GET /api/workflows/{id} lists them (to the owner only). */
export type Collaborator = Schemas['CollaboratorBody']
export type WorkflowDetail = Schemas['WorkflowDetail']
export type WorkflowInvitation = Schemas['WorkflowInvitationBody']
export type EmailShare = Schemas['EmailShareBody']
export type RunStarted = Schemas['Submitted']
export type RunDetail = Schemas['RunBody']
export type RunListItem = Schemas['RunBody']
export type NodeValidationError = Schemas['ValidationIssue']
export type ComposeResult = Schemas['Composed']
export type Uploaded = Schemas['Uploaded']
export type Version = Schemas['Version']
export type Team = Schemas['TeamBody']
export type TeamRole = Schemas['TeamRoleName']
export type TeamMember = Schemas['MemberBody']
export type TeamInvitation = Schemas['InvitationBody']
export type AuditEntry = Schemas['AuditEntryBody']
export type AuditPage = Schemas['AuditPage']
export type ProviderKey = Schemas['ProviderKeyBody']
export type Privacy = Schemas['Privacy']
export type PrivacyChange = Schemas['PrivacyChange']
export type SupportTicket = Schemas['TicketBody']
export type FraudFlag = Schemas['FlagBody']
export type ReviewedFlag = Schemas['ReviewedFlag']
export type StaffJob = Schemas['JobBody']
export type StaffJobCount = Schemas['JobCount']
export type StaffJobPage = Schemas['JobPage']
export type TeamCredits = Schemas['TeamCreditsBody']
export type MemberSpend = Schemas['MemberSpendBody']
/** A workflow's published app, as those who may read the workflow see it (docs/apps.md). */
export type PublishedApp = Schemas['AppBody']
export type PublishApp = Schemas['PublishApp']
/** An app's form, as its runners see it: no graph, no node ids. */
export type AppForm = Schemas['AppFormBody']
export type AppInputField = Schemas['InputField']
export type AppRun = Schemas['AppRunBody']
export type AuditFilter = Pick<NonNullable<paths['/api/teams/{team}/audit']['get']['parameters']['query']>, 'action' | 'actor' | 'cursor'>

/**
 * `POST /api/assets?room=…` with the upload's progress. The one call not made through
 * openapi-fetch: `fetch` reports no upload progress, XMLHttpRequest does. Its path, query and
 * answer are still the document's (`paths['/api/assets']`, `Uploaded`), and failures take the
 * same two shapes (ApiError with the server's message, NetworkError).
 */
export function uploadImage(
  token: string | null,
  room: string | null,
  png: Blob,
  onProgress: (fraction: number) => void,
): Promise<Uploaded> {
  type Query = NonNullable<paths['/api/assets']['post']['parameters']['query']>
  // No room: the upload is the caller's alone (an app's runner uploading their own image).
  const query: Query = room ? { room } : {}
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest()
    request.open('POST', `/api/assets?${new URLSearchParams(query as Record<string, string>)}`)
    for (const [name, value] of Object.entries(auth(token))) request.setRequestHeader(name, value)
    request.setRequestHeader('Content-Type', 'image/png')
    request.responseType = 'text'
    request.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total)
    }
    request.onerror = () => reject(new NetworkError(new Error('the upload did not reach the server')))
    request.onload = () => {
      let body: unknown = null
      try {
        body = JSON.parse(request.responseText)
      } catch {
        body = null
      }
      if (request.status >= 200 && request.status < 300 && isRecord(body) && typeof body.id === 'string') {
        onProgress(1)
        resolve(body as unknown as Uploaded)
        return
      }
      const record = isRecord(body) ? body : null
      const message = typeof record?.error === 'string' ? record.error : `${request.status} ${request.statusText}`
      const code = typeof record?.code === 'string' ? record.code : null
      reject(new ApiError(request.status, message, code, record))
    }
    request.send(png)
  })
}

export const api = {
  me: (token: string | null) => call(() => client.GET('/api/me', { headers: auth(token) })),
  devToken: (name: string, email?: string) =>
    call(() => client.POST('/api/dev/token', { body: email ? { name, email } : { name } })),
  // The catalog's shape is the editor's own type (catalog/catalog.ts): the document types it as
  // a plain object.
  catalog: async () => (await call(() => client.GET('/api/catalog'))) as unknown as Catalog,

  workflows: (token: string | null) => call(() => client.GET('/api/workflows', { headers: auth(token) })),
  workflow: (token: string | null, id: string) =>
    call(() => client.GET('/api/workflows/{id}', { headers: auth(token), params: { path: { id } } })),
  createWorkflow: (token: string | null, title: string, teamId?: string) =>
    call(() => client.POST('/api/workflows', { headers: auth(token), body: teamId ? { title, teamId } : { title } })),
  updateWorkflow: (token: string | null, id: string, patch: { title?: string; public?: boolean }) =>
    call(() =>
      client.PATCH('/api/workflows/{id}', { headers: auth(token), params: { path: { id } }, body: patch }),
    ),
  deleteWorkflow: (token: string | null, id: string) =>
    call(() => client.DELETE('/api/workflows/{id}', { headers: auth(token), params: { path: { id } } })),
  share: (token: string | null, id: string, user: string, permission: 'read' | 'write') =>
    call(() =>
      client.PUT('/api/workflows/{id}/collaborators/{user}', {
        headers: auth(token),
        params: { path: { id, user } },
        body: { permission },
      }),
    ),
  unshare: (token: string | null, id: string, user: string) =>
    call(() =>
      client.DELETE('/api/workflows/{id}/collaborators/{user}', {
        headers: auth(token),
        params: { path: { id, user } },
      }),
    ),
  shareByEmail: (token: string | null, id: string, email: string, permission: 'read' | 'write') =>
    call(() =>
      client.POST('/api/workflows/{id}/invitations', {
        headers: auth(token),
        params: { path: { id } },
        body: { email, permission },
      }),
    ),
  workflowInvitations: (token: string | null, id: string) =>
    call(() => client.GET('/api/workflows/{id}/invitations', { headers: auth(token), params: { path: { id } } })),
  revokeWorkflowInvitation: (token: string | null, id: string, email: string) =>
    call(() =>
      client.DELETE('/api/workflows/{id}/invitations/{email}', {
        headers: auth(token),
        params: { path: { id, email } },
      }),
    ),

  // Teams (docs/api.md#teams). Lists are read as one page of the server's largest size: the
  // editor shows at most that many members, teams or invitations.
  teams: (token: string | null) =>
    call(() => client.GET('/api/teams', { headers: auth(token), params: { query: { limit: 200 } } })),
  createTeam: (token: string | null, name: string) =>
    call(() => client.POST('/api/teams', { headers: auth(token), body: { name } })),
  team: (token: string | null, team: string) =>
    call(() => client.GET('/api/teams/{team}', { headers: auth(token), params: { path: { team } } })),
  renameTeam: (token: string | null, team: string, name: string) =>
    call(() => client.PATCH('/api/teams/{team}', { headers: auth(token), params: { path: { team } }, body: { name } })),
  deleteTeam: (token: string | null, team: string) =>
    call(() => client.DELETE('/api/teams/{team}', { headers: auth(token), params: { path: { team } } })),
  teamMembers: (token: string | null, team: string) =>
    call(() =>
      client.GET('/api/teams/{team}/members', { headers: auth(token), params: { path: { team }, query: { limit: 200 } } }),
    ),
  setTeamRole: (token: string | null, team: string, user: string, role: TeamRole) =>
    call(() =>
      client.PUT('/api/teams/{team}/members/{user}', { headers: auth(token), params: { path: { team, user } }, body: { role } }),
    ),
  removeTeamMember: (token: string | null, team: string, user: string) =>
    call(() => client.DELETE('/api/teams/{team}/members/{user}', { headers: auth(token), params: { path: { team, user } } })),
  leaveTeam: (token: string | null, team: string) =>
    call(() => client.POST('/api/teams/{team}/leave', { headers: auth(token), params: { path: { team } } })),
  inviteToTeam: (token: string | null, team: string, invitee: { userId: string } | { email: string }, role: TeamRole) =>
    call(() =>
      client.POST('/api/teams/{team}/invitations', { headers: auth(token), params: { path: { team } }, body: { ...invitee, role } }),
    ),
  teamInvitations: (token: string | null, team: string) =>
    call(() =>
      client.GET('/api/teams/{team}/invitations', { headers: auth(token), params: { path: { team }, query: { limit: 200 } } }),
    ),
  revokeTeamInvitation: (token: string | null, team: string, invitation: string) =>
    call(() =>
      client.DELETE('/api/teams/{team}/invitations/{invitation}', {
        headers: auth(token),
        params: { path: { team, invitation } },
      }),
    ),
  myInvitations: (token: string | null) =>
    call(() => client.GET('/api/me/invitations', { headers: auth(token), params: { query: { limit: 200 } } })),
  acceptInvitation: (token: string | null, invitation: string) =>
    call(() => client.POST('/api/invitations/{invitation}/accept', { headers: auth(token), params: { path: { invitation } } })),
  declineInvitation: (token: string | null, invitation: string) =>
    call(() => client.POST('/api/invitations/{invitation}/decline', { headers: auth(token), params: { path: { invitation } } })),
  /** The team's stored provider keys, masked: the server never returns a key, only its last four characters. */
  teamProviderKeys: (token: string | null, team: string) =>
    call(() => client.GET('/api/teams/{team}/provider-keys', { headers: auth(token), params: { path: { team } } })),
  setTeamProviderKey: (token: string | null, team: string, provider: string, key: string) =>
    call(() =>
      client.PUT('/api/teams/{team}/provider-keys/{provider}', {
        headers: auth(token),
        params: { path: { team, provider } },
        body: { key },
      }),
    ),
  deleteTeamProviderKey: (token: string | null, team: string, provider: string) =>
    call(() =>
      client.DELETE('/api/teams/{team}/provider-keys/{provider}', {
        headers: auth(token),
        params: { path: { team, provider } },
      }),
    ),
  teamAudit: (token: string | null, team: string, filter: AuditFilter) =>
    call(() =>
      client.GET('/api/teams/{team}/audit', {
        headers: auth(token),
        params: { path: { team }, query: { ...filter, limit: 50 } },
      }),
    ) as Promise<AuditPage>,
  /** The audit log as JSON lines (newest first, at most 10,000), as text to save. */
  teamAuditExport: (token: string | null, team: string, filter: AuditFilter) =>
    call(() =>
      client.GET('/api/teams/{team}/audit', {
        headers: auth(token),
        params: { path: { team }, query: { action: filter.action, actor: filter.actor, format: 'jsonl' } },
        parseAs: 'text',
      }),
    ) as Promise<string>,

  /** The team's balance and each member's spend this month with their limit (any member). */
  teamCredits: (token: string | null, team: string) =>
    call(() => client.GET('/api/teams/{team}/credits', { headers: auth(token), params: { path: { team } } })) as Promise<TeamCredits>,
  /** Sets a member's monthly spending limit in the team; `null` removes it (owners and admins). */
  setSpendingLimit: (token: string | null, team: string, user: string, limit: number | null) =>
    call(() =>
      client.PUT('/api/teams/{team}/members/{user}/spending-limit', {
        headers: auth(token),
        params: { path: { team, user } },
        body: { limit },
      }),
    ),

  // The workflow agent's suggestions (docs/agents.md), for the workflow's managers.
  workflowSuggestions: (token: string | null, id: string) =>
    call(() => client.GET('/api/workflows/{id}/suggestions', { headers: auth(token), params: { path: { id } } })),
  dismissSuggestions: (token: string | null, id: string) =>
    call(() =>
      client.POST('/api/workflows/{id}/suggestions/dismiss', { headers: auth(token), params: { path: { id } } }),
    ),

  // App mode (docs/apps.md): publishing a workflow as a form, and running one.
  workflowApp: (token: string | null, id: string) =>
    call(() => client.GET('/api/workflows/{id}/app', { headers: auth(token), params: { path: { id } } })),
  publishApp: (token: string | null, id: string, body: PublishApp) =>
    call(() => client.PUT('/api/workflows/{id}/app', { headers: auth(token), params: { path: { id } }, body })),
  unpublishApp: (token: string | null, id: string) =>
    call(() => client.DELETE('/api/workflows/{id}/app', { headers: auth(token), params: { path: { id } } })),
  appForm: (token: string | null, app: string) =>
    call(() => client.GET('/api/apps/{app}', { headers: auth(token), params: { path: { app } } })),
  runApp: (token: string | null, app: string, inputs: Record<string, string | number | boolean | null>) =>
    call(() =>
      client.POST('/api/apps/{app}/runs', {
        headers: { ...auth(token), 'Idempotency-Key': uuid() },
        params: { path: { app } },
        body: { inputs },
      }),
    ),
  appRun: (token: string | null, app: string, run: string) =>
    call(() => client.GET('/api/apps/{app}/runs/{run}', { headers: auth(token), params: { path: { app, run } } })),

  startRun: (token: string | null, room: string, targets: string[] | null, from?: string) =>
    call(() =>
      client.POST('/api/rooms/{room}/runs', {
        headers: { ...auth(token), 'Idempotency-Key': uuid() },
        params: { path: { room } },
        body: from ? { from } : targets ? { targets } : {},
      }),
    ),
  run: (token: string | null, id: string) =>
    call(() => client.GET('/api/runs/{id}', { headers: auth(token), params: { path: { id } } })),
  cancelRun: (token: string | null, id: string) =>
    call(() => client.POST('/api/runs/{id}/cancel', { headers: auth(token), params: { path: { id } } })),
  moveRunToFront: (token: string | null, id: string) =>
    call(() => client.POST('/api/runs/{id}/move-to-front', { headers: auth(token), params: { path: { id } } })),
  runs: (token: string | null, room: string) =>
    call(() => client.GET('/api/rooms/{room}/runs', { headers: auth(token), params: { path: { room } } })),
  versions: (token: string | null, room: string) =>
    call(() => client.GET('/api/rooms/{room}/versions', { headers: auth(token), params: { path: { room } } })),
  /** One version's document: a Yjs v1 update. */
  version: async (token: string | null, room: string, id: number) =>
    new Uint8Array(
      (await call(() =>
        client.GET('/api/rooms/{room}/versions/{id}', {
          headers: auth(token),
          params: { path: { room, id } },
          parseAs: 'arrayBuffer',
        }),
      )) as ArrayBuffer,
    ),
  /** Everything about the caller, as a tar.gz (docs/data-rights.md). */
  exportMyData: async (token: string | null) =>
    (await call(() => client.GET('/api/me/export', { headers: auth(token), parseAs: 'blob' }))) as Blob,
  // Support (docs/agents.md): the asker's side.
  openSupportTicket: (token: string | null, subject: string, body: string, room?: string) =>
    call(() =>
      client.POST('/api/support/tickets', { headers: auth(token), body: room ? { subject, body, room } : { subject, body } }),
    ),
  mySupportTickets: (token: string | null) => call(() => client.GET('/api/support/tickets', { headers: auth(token) })),

  // The staff screen (docs/agents.md): staff and admins only; everyone else gets 403.
  /** The support queue in one status (`open`, `drafted`, `answered`), oldest first, with the agent's drafts. */
  supportQueue: (token: string | null, status: string) =>
    call(() => client.GET('/api/support/queue', { headers: auth(token), params: { query: { status, limit: 200 } } })),
  answerSupportTicket: (token: string | null, id: string, answer: string) =>
    call(() =>
      client.POST('/api/support/tickets/{id}/answer', { headers: auth(token), params: { path: { id } }, body: { answer } }),
    ),
  /** The fraud agent's flags in one status, newest first (one page of the largest size). */
  fraudFlags: (token: string | null, status: string) =>
    call(() => client.GET('/api/fraud/flags', { headers: auth(token), params: { query: { status, limit: 200 } } })),
  reviewFraudFlag: (token: string | null, id: string, verdict: 'cleared' | 'confirmed', note?: string) =>
    call(() =>
      client.POST('/api/fraud/flags/{id}/review', {
        headers: auth(token),
        params: { path: { id } },
        body: note ? { verdict, note } : { verdict },
      }),
    ),
  /** The agents' newest jobs with counts by status. */
  agentJobs: (token: string | null, limit: number) =>
    call(() => client.GET('/api/agent-jobs', { headers: auth(token), params: { query: { limit } } })),
  privacy: (token: string | null) => call(() => client.GET('/api/me/privacy', { headers: auth(token) })),
  setPrivacy: (token: string | null, privacy: PrivacyChange) =>
    call(() => client.PUT('/api/me/privacy', { headers: auth(token), body: privacy })),
  /** Step one of deleting the account: what would go, and a confirmation token. */
  requestAccountDeletion: (token: string | null) =>
    call(() => client.POST('/api/me/deletion', { headers: auth(token) })),
  /** Step two: deletes the account the token confirms. */
  deleteMe: (token: string | null, confirm: string) =>
    call(() => client.DELETE('/api/me', { headers: auth(token), body: { confirm } })),
  /** Plans (and with `apply`, adds) nodes from a description; the editor plans only, then applies locally. */
  compose: (token: string | null, room: string, text: string, apply = true) =>
    call(() =>
      client.POST('/api/rooms/{room}/compose', {
        headers: auth(token),
        params: { path: { room }, query: apply ? {} : { apply: false } },
        body: { text },
      }),
    ),
}
