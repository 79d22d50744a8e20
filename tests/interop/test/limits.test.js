// Limits with a server started on a small --max-frame-bytes, where the refusal's close frame
// reliably reaches the client.

import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { useServer } from '../lib/harness.js'
import { addNode, encodeSyncUpdate, waitConverged, waitFor, waitSynced } from '../lib/clients.js'

const LIMIT = 64 * 1024
const h = useServer({ args: ['--max-frame-bytes', String(LIMIT)] })

h.test('a frame over --max-frame-bytes is refused with close code 1009; the room is unaffected', async ({ pool, room }) => {
  const a = pool.client(room, 'A')
  await waitSynced(a)
  addNode(a.doc, 'before', {})

  const raw = await pool.raw(room)
  await raw.frameAt(0)
  const big = new Y.Doc()
  big.getText('t').insert(0, 'x'.repeat(LIMIT))
  const frame = encodeSyncUpdate(Y.encodeStateAsUpdate(big))
  assert.ok(frame.length > LIMIT && frame.length < LIMIT + 100)
  raw.send(frame)
  await waitFor(() => raw.closed, { message: 'the oversized frame to close the connection' })
  assert.equal(raw.closed.code, 1009, `close code 1009 (got ${JSON.stringify(raw.closed)})`)

  const b = pool.client(room, 'B')
  await waitSynced(b)
  await waitConverged([a, b], { extra: (d) => d.getMap('nodes').has('before') })
  assert.equal(b.doc.getText('t').length, 0, 'the refused update was not applied')
  assert.equal(a.provider.wsconnected, true, 'A stays connected')
})

h.test('a frame just under --max-frame-bytes is accepted', async ({ pool, room }) => {
  const a = pool.client(room, 'A')
  const b = pool.client(room, 'B')
  await Promise.all([waitSynced(a), waitSynced(b)])
  // one transaction whose update frame is a little under the limit
  a.doc.getText('t').insert(0, 'y'.repeat(LIMIT - 200))
  await waitConverged([a, b], {
    json: (d) => d.getText('t').length,
    extra: (d) => d.getText('t').length === LIMIT - 200
  })
})
