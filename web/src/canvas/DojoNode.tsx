// One node on the canvas, drawn from its catalog entry: typed handles, a short view of its
// parameters, and what the executor reports (status, progress, a live preview, error, outputs).

import { Handle, Position, type NodeProps } from '@xyflow/react'
import { memo, type CSSProperties } from 'react'
import { isAvailable, unavailableReason, type Port } from '../catalog/catalog'
import type { FlowNode } from '../doc/binding'
import type { NodeResult } from '../doc/schema'
import { credits } from '../ui/credits'
import { useCanvas } from './context'
import { nameNodesIn } from './feedback/nodeNames'
import { hasImageOutput } from './layout/nodeSize'
import { NodeGallery } from './NodeGallery'
import { NodeOutputs } from './NodeOutputs'
import { NodePreview } from './NodePreview'
import { SharedTextArea } from './SharedTextArea'

export const DojoNode = memo(function DojoNode({ id, data, selected }: NodeProps<FlowNode>) {
  const { catalog, selectedBy, validation, nodeTitles } = useCanvas()
  const spec = catalog.spec(data.nodeType)
  const peers = selectedBy.get(id) ?? []
  const problems = validation.get(id) ?? []
  const outline: CSSProperties =
    peers.length > 0
      ? { boxShadow: peers.map((peer, i) => `0 0 0 ${2 + i * 3}px ${peer.user.color}`).join(', ') }
      : {}
  const status = data.result?.status ?? 'idle'
  return (
    <div
      className={`dojo-node status-${status}${selected ? ' selected' : ''}`}
      style={outline}
      data-testid="canvas-node"
      data-node-id={id}
      data-node-type={data.nodeType}
      data-status={status}
      data-selected-by={peers.map((p) => p.user.name).join(',')}
    >
      {peers.length > 0 && (
        <div className="selected-by" style={{ background: peers[0]?.user.color }}>
          {peers.map((p) => p.user.name).join(', ')}
        </div>
      )}
      <header>
        <span className="node-title" title={spec?.name ?? data.nodeType}>{spec?.name ?? data.nodeType}</span>
        {spec && spec.cost > 0 && <span className="cost" title="credits per run">{credits(spec.cost)}</span>}
        <StatusBadge result={data.result} />
      </header>
      {!spec && <p className="node-error">Unknown node type “{data.nodeType}”</p>}
      {spec && !isAvailable(spec) && (
        <p className="node-unavailable" data-testid="node-unavailable" title={unavailableReason(spec) ?? undefined}>
          Cannot run on this server: {unavailableReason(spec)}
        </p>
      )}
      <div className="ports">
        <div className="inputs">
          {spec?.inputs.map((port) => <PortRow key={port.name} port={port} kind="target" />)}
        </div>
        <div className="outputs">
          {spec?.outputs.map((port) => <PortRow key={port.name} port={port} kind="source" />)}
        </div>
      </div>
      <ParamPreview nodeId={id} nodeType={data.nodeType} params={data.params} />
      {data.result && (status === 'running' || status === 'queued') && (
        <div className="progress" role="progressbar" aria-valuenow={data.result.progress} aria-valuemin={0} aria-valuemax={100}>
          <div style={{ width: `${data.result.progress}%` }} />
        </div>
      )}
      {/* A refused run's problems are listed below, one by one: not twice. */}
      {data.result?.error && !(status === 'invalid' && problems.length > 0) && (
        <p className="node-error" data-testid="node-error">{nameNodesIn(data.result.error, nodeTitles)}</p>
      )}
      {problems.map((problem, i) => (
        <p key={i} className="node-error" data-testid="validation-error">
          {nameNodesIn(problem.message, nodeTitles)}
        </p>
      ))}
      <NodePreview result={data.result} />
      <NodeOutputs outputs={data.result?.outputs ?? {}} imageSlot={spec !== undefined && hasImageOutput(spec)} />
      <NodeGallery gallery={data.result?.gallery ?? []} />
    </div>
  )
})

function PortRow({ port, kind }: { port: Port; kind: 'source' | 'target' }) {
  return (
    <div className={`port port-${kind}`}>
      <Handle
        type={kind}
        id={port.name}
        position={kind === 'target' ? Position.Left : Position.Right}
        className={`handle type-${port.type}`}
        title={`${port.name}: ${port.type}`}
      />
      <span>
        {port.name}
        {port.required ? '*' : ''} <em>{port.type}</em>
      </span>
    </div>
  )
}

function StatusBadge({ result }: { result: NodeResult | null }) {
  if (!result || result.status === 'idle') return null
  return (
    <span className={`badge status-${result.status}`} data-testid="node-status">
      {result.status}
      {result.status === 'running' && result.progress > 0 ? ` ${Math.round(result.progress)}%` : ''}
    </span>
  )
}

/** The text prompt is edited in place; other nodes show their main text parameter. */
function ParamPreview({ nodeId, nodeType, params }: { nodeId: string; nodeType: string; params: Record<string, unknown> }) {
  const { doc, readOnly, assetUrl } = useCanvas()
  if (nodeType === 'image-input' && typeof params.asset === 'string' && params.asset !== '') {
    // The uploaded image, before any run: what the node will hand on.
    return (
      <img
        className="input-preview"
        data-testid="input-image"
        alt="the uploaded image"
        src={assetUrl(`/assets/${encodeURIComponent(params.asset)}`)}
      />
    )
  }
  if (nodeType === 'text-prompt') {
    // Shared text: two people typing here both keep their characters.
    return (
      <SharedTextArea
        doc={doc}
        nodeId={nodeId}
        name="text"
        className="nodrag inline-text"
        aria-label="Prompt text"
        placeholder="Type a prompt…"
        readOnly={readOnly}
        rows={3}
      />
    )
  }
  const prompt = params.prompt
  if (typeof prompt === 'string' && prompt !== '') return <p className="param-preview">“{prompt}”</p>
  return null
}
