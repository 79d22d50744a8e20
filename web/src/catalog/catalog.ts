// The node catalog served by GET /api/catalog (executor/catalog.json): what every node type
// takes, produces and costs. The editor builds its palette, handles, connection checks and
// parameter forms from it; nothing about node types is hard-coded in the editor.

export type PortType = 'text' | 'image' | 'video' | 'mesh' | 'number' | 'any' | (string & {})

export interface Port {
  name: string
  type: PortType
  required?: boolean
}

export type ParamValue = string | number | boolean

export interface Param {
  name: string
  type: 'string' | 'number' | 'integer' | 'boolean'
  default?: ParamValue
  min?: number
  max?: number
  allowed?: ParamValue[]
  maxLength?: number
  required?: boolean
}

export interface NodeSpec {
  id: string
  name: string
  category: string
  description?: string
  inputs: Port[]
  outputs: Port[]
  params: Param[]
  cost: number
  deterministic?: boolean
  provider?: { name: string; model: string }
  timeoutSecs?: number
  /** Whether this server can run it (its provider has a key here); absent on older servers. */
  available?: boolean
  /** Why not, when `available` is false. */
  unavailableReason?: string
}

/** Whether this server can run nodes of `spec`'s type (older servers do not say: assume so). */
export function isAvailable(spec: NodeSpec | undefined): boolean {
  return spec?.available !== false
}

/** Why this server cannot run `spec`'s nodes, or null when it can. */
export function unavailableReason(spec: NodeSpec | undefined): string | null {
  if (isAvailable(spec)) return null
  return spec?.unavailableReason ?? 'this server cannot run this node'
}

export interface Catalog {
  version: number
  nodes: NodeSpec[]
}

/** The catalog with lookups by node type. */
export class CatalogIndex {
  readonly byType: ReadonlyMap<string, NodeSpec>

  constructor(readonly catalog: Catalog) {
    this.byType = new Map(catalog.nodes.map((spec) => [spec.id, spec]))
  }

  spec(type: string): NodeSpec | undefined {
    return this.byType.get(type)
  }

  output(type: string, handle: string | null | undefined): Port | undefined {
    return portByHandle(this.spec(type)?.outputs, handle)
  }

  input(type: string, handle: string | null | undefined): Port | undefined {
    return portByHandle(this.spec(type)?.inputs, handle)
  }

  /** Node types whose name, id, category or description contains every word of `query`. */
  search(query: string): NodeSpec[] {
    const words = query.toLowerCase().split(/\s+/).filter(Boolean)
    return this.catalog.nodes.filter((spec) => {
      const haystack = [spec.id, spec.name, spec.category, spec.description ?? '', spec.provider?.name ?? '']
        .join(' ')
        .toLowerCase()
      return words.every((word) => haystack.includes(word))
    })
  }

  /** Node types grouped by category, in catalog order. */
  static byCategory(specs: NodeSpec[]): [string, NodeSpec[]][] {
    const groups = new Map<string, NodeSpec[]>()
    for (const spec of specs) {
      const group = groups.get(spec.category) ?? []
      group.push(spec)
      groups.set(spec.category, group)
    }
    return [...groups.entries()]
  }
}

/** A handle names its port; a node with a single port may leave the handle out. */
function portByHandle(ports: Port[] | undefined, handle: string | null | undefined): Port | undefined {
  if (!ports) return undefined
  if (handle == null || handle === '') return ports.length === 1 ? ports[0] : undefined
  return ports.find((port) => port.name === handle)
}

/** Whether an output of type `from` may feed an input of type `to`. */
export function typesCompatible(from: PortType, to: PortType): boolean {
  return from === to || from === 'any' || to === 'any'
}

/** The parameters a new node starts with: every default the catalog gives. */
export function defaultParams(spec: NodeSpec): Record<string, ParamValue> {
  const params: Record<string, ParamValue> = {}
  for (const param of spec.params) {
    if (param.default !== undefined) params[param.name] = param.default
  }
  return params
}

/** Why `value` breaks the parameter's rules, or null when it follows them. */
export function paramProblem(param: Param, value: unknown): string | null {
  if (value === undefined || value === null || value === '') {
    return param.required ? 'required' : null
  }
  switch (param.type) {
    case 'boolean':
      return typeof value === 'boolean' ? null : 'must be true or false'
    case 'integer':
    case 'number': {
      if (typeof value !== 'number' || Number.isNaN(value)) return 'must be a number'
      if (param.type === 'integer' && !Number.isInteger(value)) return 'must be a whole number'
      if (param.min !== undefined && value < param.min) return `at least ${param.min}`
      if (param.max !== undefined && value > param.max) return `at most ${param.max}`
      break
    }
    case 'string':
      if (typeof value !== 'string') return 'must be text'
      if (param.maxLength !== undefined && value.length > param.maxLength) {
        return `at most ${param.maxLength} characters`
      }
      break
  }
  if (param.allowed && !param.allowed.includes(value as ParamValue)) {
    return `one of ${param.allowed.join(', ')}`
  }
  return null
}
