// The searchable list of node types, from GET /api/catalog. Click to add at the centre of
// the view, or drag onto the canvas.
import { useMemo, useState, type DragEvent } from 'react'
import { CatalogIndex, unavailableReason, type NodeSpec } from '../catalog/catalog'
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
  const unavailableCount = useMemo(
    () => catalog.catalog.nodes.filter((spec) => unavailableReason(spec) !== null).length,
    [catalog],
  )
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
      {unavailableCount > 0 && (
        <p className="muted small" data-testid="palette-unavailable-note">
          {unavailableCount} node type{unavailableCount === 1 ? '' : 's'} cannot run on this server (no key for
          {' '}their provider): they are dimmed, and hovering one says which key is missing.
        </p>
      )}
      {groups.map(([category, specs]) => (
        <section key={category}>
          <h3>{category}</h3>
          {specs.map((spec) => {
            // A node this server cannot run (its provider has no key here) can still be placed,
            // to design a canvas for another server, but it says so and does not look runnable.
            const reason = unavailableReason(spec)
            return (
              <button
                key={spec.id}
                className={reason ? 'palette-item unavailable' : 'palette-item'}
                data-testid="palette-item"
                data-node-type={spec.id}
                data-available={reason ? 'false' : 'true'}
                disabled={disabled}
                title={reason ? `Cannot run here: ${reason}` : (spec.description ?? spec.name)}
                draggable={!disabled}
                onDragStart={(e: DragEvent) => {
                  e.dataTransfer.setData(DRAG_TYPE, spec.id)
                  e.dataTransfer.effectAllowed = 'copy'
                }}
                onClick={() => onAdd(spec)}
              >
                <span className="palette-name">
                  <span>{spec.name}</span>
                  {reason && (
                    <span className="palette-unavailable" data-testid="palette-unavailable">
                      not on this server
                    </span>
                  )}
                </span>
                {spec.cost > 0 && <span className="cost">{credits(spec.cost)}</span>}
              </button>
            )
          })}
        </section>
      ))}
    </aside>
  )
}
