// The HTTP API's transport: a typed openapi-fetch client over the generated `paths` (schema.ts,
// from the server's OpenAPI document), and errors as ApiError carrying the server's
// `{"error", "code", …}` body, or NetworkError when there is no HTTP answer at all.

import createClient from 'openapi-fetch'
import type { paths } from './schema'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string | null,
    readonly body: Record<string, unknown> | null,
  ) {
    super(message)
    this.name = 'ApiError'
  }

  /**
   * The route itself does not exist on this server (an older dojo-server): `route_not_found`, or
   * from servers before that code a bare 404 with no API error body. Any other 404 is "that
   * thing does not exist" (`not_found`, `room_not_found`).
   */
  get routeMissing(): boolean {
    return this.status === 404 && (this.code === null || this.code === 'route_not_found')
  }
}

/** The network failed (server down, browser offline): no HTTP status at all. */
export class NetworkError extends Error {
  constructor(cause: unknown) {
    super(`cannot reach the server (${cause instanceof Error ? cause.message : String(cause)})`)
    this.name = 'NetworkError'
  }
}

/**
 * Same origin as the editor (dojo-server serves both; Vite's dev server proxies). `fetch` is
 * looked up on each call, so tests and the browser's own replacement of it are honoured.
 */
export const client = createClient<paths>({
  baseUrl: typeof location === 'undefined' ? '' : location.origin,
  fetch: (request) => globalThis.fetch(request),
})

/** `Authorization` for a token, none without one (dev mode). */
export function auth(token: string | null): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {}
}

interface Answer<T> {
  data?: T
  error?: unknown
  response: Response
}

/** The answer's data, or the failure as ApiError / NetworkError. */
export async function call<T>(send: () => Promise<Answer<T>>): Promise<T> {
  let answer: Answer<T>
  try {
    answer = await send()
  } catch (cause) {
    throw new NetworkError(cause)
  }
  const { data, error, response } = answer
  if (!response.ok) {
    const record = isRecord(error) ? error : null
    const message = typeof record?.error === 'string' ? record.error : `${response.status} ${response.statusText}`
    const code = typeof record?.code === 'string' ? record.code : null
    throw new ApiError(response.status, message, code, record)
  }
  return data as T
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A random v4 UUID, also outside secure contexts (where crypto.randomUUID is missing). */
export function uuid(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16))
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}
