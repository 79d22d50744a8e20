// The searchable list of node types, from GET /api/catalog. Click to add at the centre of
// the view, or drag onto the canvas.
import { useMemo, useState, type DragEvent } from 'react'
import { CatalogIndex, type NodeSpec } from '../catalog/catalog'
import { credits } from '../ui/credits'

export const DRAG_TYPE = 'application/x-dojo-node-type'

interface Props {
  catalog: CatalogIndex
  disabled: boolean
  onAdd: (spec: NodeSpec) => void
}

export function Palette({ catalog, disabled, onAdd }: Props) {
  const [query, setQuery] = useState('')
  const groups = useMemo(() => CatalogIndex.byCategory(catalog.search(query)), [catalog, query])
  return (
    <aside className="palette" aria-label="Node palette">
      <input
        type="search"
        placeholder="Search nodes…"
        aria-label="Search nodes"
        value={query}
        onChange={(e) => setQuery(e.target.value)}
      />
      {groups.length === 0 && <p className="muted small">No node matches “{query}”.</p>}
      {groups.map(([category, specs]) => (
        <section key={category}>
          <h3>{category}</h3>
          {specs.map((spec) => (
            <button
              key={spec.id}
              className="palette-item"
              data-testid="palette-item"
              data-node-type={spec.id}
              disabled={disabled}
              title={spec.description ?? spec.name}
              draggable={!disabled}
              onDragStart={(e: DragEvent) => {
                e.dataTransfer.setData(DRAG_TYPE, spec.id)
                e.dataTransfer.effectAllowed = 'copy'
              }}
              onClick={() => onAdd(spec)}
            >
              <span>{spec.name}</span>
              {spec.cost > 0 && <span className="cost">{credits(spec.cost)}</span>}
            </button>
          ))}
        </section>
      ))}
    </aside>
  )
}
