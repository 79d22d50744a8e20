// The dojo-server HTTP API as typed functions (see GET /api/openapi.json).

import type { Catalog } from '../catalog/catalog'
import type { EditOp } from '../doc/edits'
import { request, uuid } from './http'

export interface Me {
  id: string
  subject: string
  name: string | null
  email: string | null
  credits: number
  anonymous: boolean
}

export type Permission = 'read' | 'write' | 'admin'

export interface Workflow {
  id: string
  room: string
  ownerId: string
  title: string
  public: boolean
  permission: Permission
  createdAt: number
  updatedAt: number
}

/** Someone a workflow is shared with, as GET /api/workflows/{id} lists them (to the owner only). */
export interface Collaborator {
  userId: string
  permission: 'read' | 'write'
  addedAt: number
}

export interface WorkflowDetail extends Workflow {
  /** Empty unless the caller owns the workflow. */
  collaborators: Collaborator[]
}

export interface RunStarted {
  run_id: string
  status: string
  estimate: number
}

export interface RunNodeState {
  state: string
  error: string | null
  cost: number | null
}

export interface RunDetail {
  id: string
  room: string
  status: string
  estimate: number
  charged: number | null
  created_at: number
  finished_at: number | null
  nodes: Record<string, RunNodeState>
}

export interface RunListItem {
  id: string
  status: string
  estimate: number
  charged: number | null
  created_at: number
  finished_at: number | null
  user_id: string
}

export interface NodeValidationError {
  type: string
  message: string
  details?: string
}

export interface ComposeResult {
  nodes: string[]
  edges: string[]
  /** Who planned: the configured language model, or the built-in parser over the catalog. */
  planner: 'llm' | 'parser'
  /** Why the model's plan was not used, when the parser stood in for it. */
  fallback?: string
  /** The graph edit that adds them: applied already, or (`apply: false`) for the editor to apply. */
  ops?: EditOp[]
  /** The applied edit, for `POST /api/rooms/{room}/edits/{editId}/undo` (absent when only planned). */
  editId?: string
}

const room = (name: string) => `/api/rooms/${encodeURIComponent(name)}`

export const api = {
  me: (token: string | null) => request<Me>('/api/me', { token }),
  devToken: (name: string) =>
    request<{ token: string }>('/api/dev/token', { method: 'POST', body: { name } }),
  catalog: () => request<Catalog>('/api/catalog'),

  workflows: (token: string | null) => request<Workflow[]>('/api/workflows', { token }),
  workflow: (token: string | null, id: string) =>
    request<WorkflowDetail>(`/api/workflows/${encodeURIComponent(id)}`, { token }),
  createWorkflow: (token: string | null, title: string) =>
    request<Workflow>('/api/workflows', { method: 'POST', token, body: { title } }),
  updateWorkflow: (token: string | null, id: string, patch: { title?: string; public?: boolean }) =>
    request<Workflow>(`/api/workflows/${encodeURIComponent(id)}`, { method: 'PATCH', token, body: patch }),
  deleteWorkflow: (token: string | null, id: string) =>
    request<null>(`/api/workflows/${encodeURIComponent(id)}`, { method: 'DELETE', token }),
  share: (token: string | null, id: string, user: string, permission: 'read' | 'write') =>
    request<unknown>(`/api/workflows/${encodeURIComponent(id)}/collaborators/${encodeURIComponent(user)}`, {
      method: 'PUT',
      token,
      body: { permission },
    }),
  unshare: (token: string | null, id: string, user: string) =>
    request<null>(`/api/workflows/${encodeURIComponent(id)}/collaborators/${encodeURIComponent(user)}`, {
      method: 'DELETE',
      token,
    }),

  startRun: (token: string | null, roomName: string, targets: string[] | null) =>
    request<RunStarted>(`${room(roomName)}/runs`, {
      method: 'POST',
      token,
      body: targets ? { targets } : {},
      headers: { 'Idempotency-Key': uuid() },
    }),
  run: (token: string | null, id: string) => request<RunDetail>(`/api/runs/${encodeURIComponent(id)}`, { token }),
  cancelRun: (token: string | null, id: string) =>
    request<unknown>(`/api/runs/${encodeURIComponent(id)}/cancel`, { method: 'POST', token }),
  runs: (token: string | null, roomName: string) =>
    request<{ runs: RunListItem[] }>(`${room(roomName)}/runs`, { token }),
  /** Plans (and with `apply`, adds) nodes from a description; the editor plans only, then applies locally. */
  compose: (token: string | null, roomName: string, text: string, apply = true) =>
    request<ComposeResult>(`${room(roomName)}/compose${apply ? '' : '?apply=false'}`, { method: 'POST', token, body: { text } }),
}
