// Messages written by the server name nodes by their ids ("not run: n-3fa1…, which it depends
// on, failed"); ids mean nothing to a person, so the editor swaps in each node's title.

/** `text` with every known node id replaced by “title”. Longer ids go first, so an id that is a prefix of another never clips it. */
export function nameNodesIn(text: string, titles: ReadonlyMap<string, string>): string {
  const ids = [...titles.keys()].filter((id) => id !== '' && text.includes(id)).sort((a, b) => b.length - a.length)
  if (ids.length === 0) return text
  const pattern = new RegExp(ids.map(escapeRegExp).join('|'), 'g')
  return text.replace(pattern, (id) => `“${titles.get(id) ?? id}”`)
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}
