// A ~5 MB canvas written by one stock client syncs to late joiners byte for byte.

import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import * as Y from 'yjs'
import { useServer } from '../lib/harness.js'
import { addNode, canvasJSON, describeStateVector, waitConverged, waitSynced } from '../lib/clients.js'

const h = useServer()

const NODES = 25
const PARAM_BYTES = 100 * 1024 // per node
const TEXT_BYTES = 2.5 * 1024 * 1024 // one Y.Text insert = one ~2.5 MB update frame

// JSON with sorted keys: Y.Map#toJSON lists keys in the order this replica integrated them,
// which legitimately differs between replicas.
function canonical (value) {
  if (Array.isArray(value)) return value.map(canonical)
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]))
  }
  return value
}

function digest (doc) {
  const hash = createHash('sha256')
  hash.update(JSON.stringify(canonical(canvasJSON(doc))))
  hash.update('\0')
  hash.update(doc.getText('notes').toString())
  return hash.digest('hex')
}

function summary (doc) {
  return {
    nodes: doc.getMap('nodes').size,
    textLength: doc.getText('notes').length,
    digest: digest(doc)
  }
}

h.test('a 5 MB document syncs to a fresh late joiner', async ({ pool, room }) => {
  const a = pool.client(room, 'A')
  await waitSynced(a)

  // ~2.5 MB in 25 nodes of 100 KB params, written in 5 transactions of ~500 KB
  for (let batch = 0; batch < 5; batch++) {
    a.doc.transact(() => {
      for (let i = batch * 5; i < batch * 5 + 5; i++) {
        addNode(a.doc, `big-${i}`, {
          type: 'llm',
          x: i,
          y: -i,
          params: { prompt: randomBytes(PARAM_BYTES * 3 / 4).toString('base64'), index: i }
        })
      }
    })
  }
  // ~2.5 MB of text in a single transaction
  a.doc.getText('notes').insert(0, randomBytes(TEXT_BYTES * 3 / 4).toString('base64'))

  const size = Y.encodeStateAsUpdate(a.doc).length
  assert.ok(size >= 5_000_000, `document is ~5 MB (${size} bytes)`)
  const expected = summary(a.doc)
  assert.equal(expected.nodes, NODES)

  // B joins while A is still there; it may get part of the data in sync step 2 and the rest
  // as live updates, but must end up identical.
  const b = pool.client(room, 'B')
  await waitSynced(b, 30_000)
  await waitConverged([a, b], {
    timeout: 30_000,
    interval: 100,
    json: summary,
    message: 'B to hold the whole 5 MB document'
  })

  // C joins after everything is on the server: its sync step 2 alone carries the whole ~5 MB.
  a.destroy()
  const c = pool.client(room, 'C')
  await waitSynced(c, 30_000)
  assert.deepEqual(summary(c.doc), expected)
  assert.equal(describeStateVector(c.doc), describeStateVector(b.doc))
  // spot-check actual content, not just the hash
  const nodeC = c.doc.getMap('nodes').get('big-17')
  const nodeB = b.doc.getMap('nodes').get('big-17')
  assert.equal(nodeC.get('data').get('prompt'), nodeB.get('data').get('prompt'))
  assert.equal(nodeC.get('data').get('prompt').length, PARAM_BYTES)
})
