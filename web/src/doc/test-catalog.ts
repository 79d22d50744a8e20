// A small catalog in the server's shape, for unit tests.
import { CatalogIndex, type Catalog } from '../catalog/catalog'

export const testCatalog: Catalog = {
  version: 1,
  nodes: [
    {
      id: 'text-prompt', name: 'Text prompt', category: 'text', inputs: [],
      outputs: [{ name: 'text', type: 'text' }],
      params: [{ name: 'text', type: 'string', default: '', maxLength: 8000 }], cost: 0,
    },
    {
      id: 'dev-image', name: 'Dev image generator', category: 'image',
      inputs: [{ name: 'prompt', type: 'text' }], outputs: [{ name: 'image', type: 'image' }],
      params: [
        { name: 'prompt', type: 'string', default: '' },
        { name: 'seed', type: 'integer', default: 0, min: 0, max: 4294967295 },
      ],
      cost: 0,
    },
    {
      id: 'blur', name: 'Gaussian blur', category: 'tool',
      inputs: [{ name: 'image', type: 'image', required: true }], outputs: [{ name: 'image', type: 'image' }],
      params: [{ name: 'sigma', type: 'number', default: 2, min: 0.1, max: 20 }], cost: 0,
    },
    {
      id: 'dall-e-3', name: 'DALL·E 3', category: 'image',
      inputs: [{ name: 'prompt', type: 'text', required: true }], outputs: [{ name: 'image', type: 'image' }],
      params: [{ name: 'quality', type: 'string', default: 'standard', allowed: ['standard', 'hd'] }], cost: 8,
    },
  ],
}

export const testIndex = new CatalogIndex(testCatalog)

export function spec(id: string) {
  const found = testIndex.spec(id)
  if (!found) throw new Error(`no ${id} in the test catalog`)
  return found
}
