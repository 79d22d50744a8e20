// This user's presence on the canvas: who they are, which nodes they selected and where their
// cursor is (in flow coordinates, so it lands on the same spot at every viewer's zoom), and the
// peers' presence in return.
import { useReactFlow } from '@xyflow/react'
import { useCallback, useEffect, useMemo, useRef } from 'react'
import type { Awareness } from 'y-protocols/awareness'
import type { Session } from '../../auth/session'
import { colourFor, useLocalPresence, usePeers, type Peer, type PresenceUser } from '../../collab/presence'
import type { FlowNode } from '../../doc/binding'

export interface CanvasPresence {
  me: PresenceUser
  peers: Peer[]
  onPointerMove: (event: React.PointerEvent) => void
  onPointerLeave: () => void
}

export function useCanvasPresence(awareness: Awareness, session: Session, selectedIds: string[]): CanvasPresence {
  const flow = useReactFlow<FlowNode>()
  const name = session.me.name ?? session.me.subject ?? 'Anonymous'
  const me = useMemo<PresenceUser>(
    () => ({ id: session.me.id, name, color: colourFor(`${session.me.id}:${name}`) }),
    [session.me.id, name],
  )
  useLocalPresence(awareness, me)
  const peers = usePeers(awareness)
  useEffect(() => {
    awareness.setLocalStateField('selection', selectedIds)
  }, [awareness, selectedIds])

  // One awareness update per animation frame at most, carrying the latest position.
  const pendingCursor = useRef<{ x: number; y: number } | null>(null)
  const onPointerMove = useCallback(
    (event: React.PointerEvent) => {
      const first = pendingCursor.current === null
      pendingCursor.current = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY })
      if (first) {
        requestAnimationFrame(() => {
          awareness.setLocalStateField('cursor', pendingCursor.current)
          pendingCursor.current = null
        })
      }
    },
    [awareness, flow],
  )
  const onPointerLeave = useCallback(() => awareness.setLocalStateField('cursor', null), [awareness])
  return { me, peers, onPointerMove, onPointerLeave }
}
