// The lines above the canvas that explain its state: read-only, access denied, session
// expired, and the runs' latest message.
import type { ConnectionState } from '../../collab/connection'

interface Props {
  readOnly: boolean
  connectionState: ConnectionState
  message: string | null
  onDismiss: () => void
}

export function Banners({ readOnly, connectionState, message, onDismiss }: Props) {
  return (
    <>
      {readOnly && (
        <p className="banner" data-testid="read-only-banner">
          Read-only: you can look and follow along, but not change this workflow.
        </p>
      )}
      {connectionState.kind === 'denied' && (
        <p className="banner error" role="alert" data-testid="access-denied">
          {connectionState.reason}
        </p>
      )}
      {connectionState.kind === 'expired' && (
        <p className="banner error" role="alert" data-testid="session-expired">
          Your session expired. <a href="/">Sign in again</a>; your unsaved edits in this tab are lost when you leave.
        </p>
      )}
      {message && (
        <p className="banner" role="status" data-testid="notice">
          {message}{' '}
          <button className="link" onClick={onDismiss}>
            dismiss
          </button>
        </p>
      )}
    </>
  )
}
