// One fetch wrapper for the HTTP API: bearer token, JSON in and out, and errors as ApiError
// carrying the server's `{"error", "code", …}` body.

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

export interface RequestOptions {
  method?: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE'
  body?: unknown
  token?: string | null
  headers?: Record<string, string>
}

export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', ...options.headers }
  if (options.token) headers.Authorization = `Bearer ${options.token}`
  let body: string | undefined
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(options.body)
  }
  let response: Response
  try {
    response = await fetch(path, { method: options.method ?? 'GET', headers, body })
  } catch (cause) {
    throw new NetworkError(cause)
  }
  const text = await response.text()
  const json = parseJson(text)
  if (!response.ok) {
    const record = isRecord(json) ? json : null
    const message = typeof record?.error === 'string' ? record.error : `${response.status} ${response.statusText}`
    const code = typeof record?.code === 'string' ? record.code : null
    throw new ApiError(response.status, message, code, record)
  }
  return json as T
}

function parseJson(text: string): unknown {
  if (text === '') return null
  try {
    return JSON.parse(text)
  } catch {
    return null
  }
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
