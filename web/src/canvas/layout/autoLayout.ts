// Auto-layout: the canvas arranged as a layered graph, left to right along its wires, by
// dagre (@dagrejs/dagre, the layered layout React Flow's own examples use). Each node keeps
// its measured size, so laid-out nodes never overlap; unconnected nodes get a rank of their own.
import dagre from '@dagrejs/dagre'

export interface LayoutNode {
  id: string
  width: number
  height: number
}

export interface LayoutEdge {
  source: string
  target: string
}

/** Space between ranks (columns) and between nodes of one rank. */
const RANK_GAP = 80
const NODE_GAP = 40

/** Top-left positions for every node, laid out left to right along the wires. */
export function layeredLayout(nodes: LayoutNode[], edges: LayoutEdge[]): Map<string, { x: number; y: number }> {
  const graph = new dagre.graphlib.Graph()
  graph.setGraph({ rankdir: 'LR', ranksep: RANK_GAP, nodesep: NODE_GAP, marginx: 0, marginy: 0 })
  graph.setDefaultEdgeLabel(() => ({}))
  const known = new Set<string>()
  for (const node of nodes) {
    graph.setNode(node.id, { width: node.width, height: node.height })
    known.add(node.id)
  }
  for (const edge of edges) {
    if (known.has(edge.source) && known.has(edge.target) && edge.source !== edge.target) graph.setEdge(edge.source, edge.target)
  }
  dagre.layout(graph)
  const positions = new Map<string, { x: number; y: number }>()
  for (const node of nodes) {
    const placed = graph.node(node.id)
    // dagre gives centres; React Flow positions are top-left corners.
    positions.set(node.id, { x: Math.round(placed.x - node.width / 2), y: Math.round(placed.y - node.height / 2) })
  }
  return positions
}
