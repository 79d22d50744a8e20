import { ApiError, NetworkError } from '../api/http'

/** A sentence for the user about a failed request. */
export function describeError(error: unknown): string {
  if (error instanceof NetworkError) return 'The server cannot be reached. Check that dojo-server is running.'
  if (error instanceof ApiError) {
    if (error.status === 401) return 'Your session has expired. Sign in again.'
    if (error.status === 403) return `Not allowed: ${error.message}`
    if (error.status === 429) return 'Too many requests; wait a moment and try again.'
    return error.message
  }
  return error instanceof Error ? error.message : String(error)
}
