// Node id → the title a person sees on it (the catalog name of its type), for messages that
// mention other nodes. Recomputed only when nodes come or go or change type, not on every drag.
import { useMemo } from 'react'
import type { CatalogIndex } from '../../catalog/catalog'
import type { FlowNode } from '../../doc/binding'

export function useNodeTitles(nodes: FlowNode[], catalog: CatalogIndex): ReadonlyMap<string, string> {
  const key = nodes.map((node) => `${node.id}\u0000${node.data.nodeType}`).join('\u0001')
  return useMemo(() => {
    const titles = new Map<string, string>()
    for (const entry of key === '' ? [] : key.split('\u0001')) {
      const [id = '', type = ''] = entry.split('\u0000')
      titles.set(id, catalog.spec(type)?.name ?? type)
    }
    return titles
  }, [key, catalog])
}
