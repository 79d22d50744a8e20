// The parameter form of one node, generated from its catalog entry: shared text areas for prompts
// (SharedTextArea: people type into them together),
// choices for `allowed` values, numbers and sliders within min/max, check boxes for booleans.
// Every change is written to the node's `data` map at once, so collaborators see it live.
import type { NodeSpec, Param } from '../catalog/catalog'
import { paramProblem } from '../catalog/catalog'
import type { FlowNode } from '../doc/binding'
import { setParam } from '../doc/edits'
import { isSharedTextParam } from '../doc/sharedText'
import { credits } from '../ui/credits'
import { useCanvas } from './context'
import { SharedTextArea } from './SharedTextArea'

interface Props {
  node: FlowNode
  onClose: () => void
}

export function ParamPanel({ node, onClose }: Props) {
  const { catalog, doc, readOnly } = useCanvas()
  const spec = catalog.spec(node.data.nodeType)
  return (
    <aside className="param-panel" aria-label="Node settings" data-testid="param-panel">
      <header>
        <h2>{spec?.name ?? node.data.nodeType}</h2>
        <button className="icon" aria-label="Close settings" onClick={onClose}>
          ×
        </button>
      </header>
      {spec?.description && <p className="muted small">{spec.description}</p>}
      {spec && <SpecFacts spec={spec} />}
      {spec?.params.length === 0 && <p className="muted">This node has no parameters.</p>}
      {spec?.params.map((param) =>
        isSharedTextParam(param) ? (
          <label className="param-field" data-param={param.name} key={param.name}>
            <span>{`${param.name}${param.required ? ' *' : ''}`}</span>
            <SharedTextArea doc={doc} nodeId={node.id} name={param.name} rows={3} maxLength={param.maxLength} disabled={readOnly} />
            {paramProblem(param, node.data.params[param.name] ?? param.default) && (
              <span className="field-problem">{paramProblem(param, node.data.params[param.name] ?? param.default)}</span>
            )}
          </label>
        ) : (
          <ParamField
            key={param.name}
            param={param}
            value={node.data.params[param.name]}
            disabled={readOnly}
            onChange={(value) => setParam(doc, node.id, param.name, value)}
          />
        ),
      )}
      <p className="muted small">Node id: {node.id}</p>
    </aside>
  )
}

function SpecFacts({ spec }: { spec: NodeSpec }) {
  return (
    <p className="muted small">
      {spec.provider ? `${spec.provider.name} · ${spec.provider.model} · ` : 'built in · '}
      {credits(spec.cost)} per run
    </p>
  )
}

interface FieldProps {
  param: Param
  value: unknown
  disabled: boolean
  onChange: (value: unknown) => void
}

function ParamField({ param, value, disabled, onChange }: FieldProps) {
  const current = value ?? param.default
  const problem = paramProblem(param, current)
  const label = `${param.name}${param.required ? ' *' : ''}`
  return (
    <label className="param-field" data-param={param.name}>
      <span>{label}</span>
      <FieldInput param={param} value={current} disabled={disabled} onChange={onChange} />
      {(param.min !== undefined || param.max !== undefined) && (
        <span className="muted small">
          {param.min ?? '−∞'} … {param.max ?? '∞'}
        </span>
      )}
      {problem && <span className="field-problem">{problem}</span>}
    </label>
  )
}

function FieldInput({ param, value, disabled, onChange }: FieldProps) {
  if (param.allowed) {
    return (
      <select
        value={String(value ?? '')}
        disabled={disabled}
        onChange={(e) => {
          const picked = param.allowed?.find((option) => String(option) === e.target.value)
          onChange(picked)
        }}
      >
        {value === undefined && <option value="">—</option>}
        {param.allowed.map((option) => (
          <option key={String(option)} value={String(option)}>
            {String(option)}
          </option>
        ))}
      </select>
    )
  }
  switch (param.type) {
    case 'boolean':
      return <input type="checkbox" checked={value === true} disabled={disabled} onChange={(e) => onChange(e.target.checked)} />
    case 'integer':
    case 'number': {
      const step = param.type === 'integer' ? 1 : 'any'
      const number = typeof value === 'number' ? value : ''
      const slider = param.min !== undefined && param.max !== undefined && param.max - param.min <= 10_000
      const parse = (text: string) => {
        if (text === '') return undefined
        const parsed = Number(text)
        return param.type === 'integer' ? Math.round(parsed) : parsed
      }
      return (
        <span className="number-field">
          {slider && (
            <input
              type="range"
              min={param.min}
              max={param.max}
              step={param.type === 'integer' ? 1 : ((param.max ?? 1) - (param.min ?? 0)) / 200}
              value={number === '' ? (param.min ?? 0) : number}
              disabled={disabled}
              onChange={(e) => onChange(parse(e.target.value))}
            />
          )}
          <input
            type="number"
            min={param.min}
            max={param.max}
            step={step}
            value={number}
            disabled={disabled}
            onChange={(e) => onChange(parse(e.target.value))}
          />
        </span>
      )
    }
    case 'string': {
      const text = typeof value === 'string' ? value : ''
      const long = param.maxLength === undefined || param.maxLength > 200
      return long ? (
        <textarea rows={3} maxLength={param.maxLength} value={text} disabled={disabled} onChange={(e) => onChange(e.target.value)} />
      ) : (
        <input type="text" maxLength={param.maxLength} value={text} disabled={disabled} onChange={(e) => onChange(e.target.value)} />
      )
    }
  }
}
