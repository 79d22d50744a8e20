// Other people in the room: their cursors on the canvas and their avatars in the top bar.
import { ViewportPortal } from '@xyflow/react'
import { initials, type Peer } from '../collab/presence'

export function RemoteCursors({ peers }: { peers: Peer[] }) {
  return (
    <ViewportPortal>
      {peers
        .filter((peer) => peer.cursor)
        .map((peer) => (
          <div
            key={peer.clientId}
            className={`remote-cursor${peer.idle ? ' idle' : ''}`}
            data-testid="remote-cursor"
            data-name={peer.user.name}
            style={{ transform: `translate(${peer.cursor?.x ?? 0}px, ${peer.cursor?.y ?? 0}px)` }}
          >
            <svg width="18" height="18" viewBox="0 0 18 18" aria-hidden="true">
              <path d="M1 1 L1 15 L5 11 L8 17 L11 16 L8 10 L14 10 Z" fill={peer.user.color} stroke="white" strokeWidth="1" />
            </svg>
            <span style={{ background: peer.user.color }}>{peer.user.name}</span>
          </div>
        ))}
    </ViewportPortal>
  )
}

interface AvatarsProps {
  me: { name: string; color: string }
  peers: Peer[]
  /** Our own connection is down: everyone else's presence is unknown. */
  disconnected: boolean
}

export function Avatars({ me, peers, disconnected }: AvatarsProps) {
  return (
    <div className={`avatars${disconnected ? ' disconnected' : ''}`} data-testid="avatars">
      <span className="avatar me" style={{ background: me.color }} title={`${me.name} (you)`}>
        {initials(me.name)}
      </span>
      {peers.map((peer) => (
        <span
          key={peer.clientId}
          className={`avatar${peer.idle ? ' idle' : ''}`}
          data-testid="avatar"
          data-name={peer.user.name}
          data-idle={peer.idle}
          style={{ background: peer.user.color }}
          title={`${peer.user.name}${peer.idle ? ' (idle)' : ''}`}
        >
          {initials(peer.user.name)}
        </span>
      ))}
    </div>
  )
}
