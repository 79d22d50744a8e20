import type { ConnectionState } from '../collab/connection'

const LABELS: Record<ConnectionState['kind'], string> = {
  connecting: 'Connecting…',
  online: 'Live',
  offline: 'Offline',
  denied: 'No access',
  expired: 'Signed out',
}

/** The connection state, always visible: live, syncing, offline (with why). */
export function ConnectionBadge({ state }: { state: ConnectionState }) {
  const detail =
    state.kind === 'offline' || state.kind === 'denied'
      ? state.reason
      : state.kind === 'online' && !state.synced
        ? 'syncing…'
        : state.kind === 'expired'
          ? 'your session expired'
          : ''
  return (
    <span className={`connection ${state.kind}`} data-testid="connection" data-state={state.kind} title={detail}>
      <span className="dot" /> {LABELS[state.kind]}
      {state.kind === 'offline' && <span className="small"> · edits kept</span>}
    </span>
  )
}
