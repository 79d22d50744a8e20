// Pans and zooms to nodes that are about to appear. The compose route writes its nodes on the
// server, so the HTTP answer can come before the document update that carries them: the frame
// waits until every node is on the canvas and measured (React Flow frames by size), for a while.
import { useReactFlow } from '@xyflow/react'
import { useEffect, useState } from 'react'
import type { FlowNode } from '../../doc/binding'
import { FRAME_CLEAR_OF_CONTROLS } from '../layout/viewport'

const GIVE_UP_MS = 10_000

export function useFrameNodes(nodes: FlowNode[]): (ids: string[]) => void {
  const flow = useReactFlow<FlowNode>()
  const [pending, setPending] = useState<string[] | null>(null)

  useEffect(() => {
    if (!pending || pending.length === 0) return
    const measured = new Set(nodes.filter((node) => node.measured?.width).map((node) => node.id))
    if (!pending.every((id) => measured.has(id))) return
    void flow.fitView({ ...FRAME_CLEAR_OF_CONTROLS, nodes: pending.map((id) => ({ id })), duration: 300 })
    setPending(null)
  }, [flow, nodes, pending])

  useEffect(() => {
    if (!pending) return
    const timer = setTimeout(() => setPending(null), GIVE_UP_MS)
    return () => clearTimeout(timer)
  }, [pending])

  return setPending
}
