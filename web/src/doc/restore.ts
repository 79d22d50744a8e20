// Restoring a stored version in the editor: the version's document (GET
// /api/rooms/{room}/versions/{id}, a Yjs update) is read into a document of its own, and the
// difference between it and the live canvas is written here, in one transaction with
// LOCAL_ORIGIN. So the restore is an ordinary change everyone sees, and one step of this
// person's Undo: Ctrl+Z brings back what was there before. Only the roots people write
// (`nodes`, `edges`) are restored: `results` and `runs` are the executor's, and the server
// refuses anyone else's changes to them.

import * as Y from 'yjs'
import { EDITOR_ROOTS, LOCAL_ORIGIN } from './schema'

/** A version's document, from the update the server sends. Throws on bytes that are not one. */
export function versionDoc(update: Uint8Array): Y.Doc {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  return doc
}

/** A copy of a document value that can be inserted into another document. */
function copy(value: unknown): unknown {
  if (value instanceof Y.Map) {
    const map = new Y.Map<unknown>()
    value.forEach((inner, key) => map.set(key, copy(inner)))
    return map
  }
  if (value instanceof Y.Text) return new Y.Text(value.toString())
  if (value instanceof Y.Array) {
    const array = new Y.Array<unknown>()
    array.push(value.toArray().map(copy))
    return array
  }
  return value
}

/** A value as comparable JSON (map keys sorted). */
function canonical(value: unknown): string {
  const plain = value instanceof Y.AbstractType ? value.toJSON() : value
  return JSON.stringify(plain, (_key, inner: unknown) =>
    inner && typeof inner === 'object' && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : inner,
  )
}

/** What a restore would change: entries added, changed and removed, per root. */
export interface RestoreDiff {
  added: number
  changed: number
  removed: number
}

/**
 * Makes `doc`'s nodes and edges equal to `version`'s, as one local transaction; entries that
 * are already equal are left alone (so a collaborator's edit elsewhere is not touched).
 */
export function restoreVersion(doc: Y.Doc, version: Y.Doc): RestoreDiff {
  const diff: RestoreDiff = { added: 0, changed: 0, removed: 0 }
  doc.transact(() => {
    for (const root of EDITOR_ROOTS) {
      const current = doc.getMap<unknown>(root)
      const wanted = version.getMap<unknown>(root)
      for (const key of [...current.keys()]) {
        if (!wanted.has(key)) {
          current.delete(key)
          diff.removed++
        }
      }
      wanted.forEach((value, key) => {
        const existing = current.get(key)
        if (existing !== undefined && canonical(existing) === canonical(value)) return
        if (existing === undefined) diff.added++
        else diff.changed++
        current.set(key, copy(value))
      })
    }
  }, LOCAL_ORIGIN)
  return diff
}
