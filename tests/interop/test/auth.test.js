// Tokens and permissions with stock y-websocket providers: the token travels in `params`
// (?token=…), read-only clients receive everything and change nothing, an expired token ends
// the connection with 4401, and no token means no document.

import assert from 'node:assert/strict'
import { useServer } from '../lib/harness.js'
import { SECRET, token } from '../lib/tokens.js'
import { addNode, canvasJSON, sleep, waitFor, waitSynced } from '../lib/clients.js'

const h = useServer({ env: { DOJO_JWT_SECRET: SECRET, DOJO_JWT_LEEWAY_SECS: '0' } })

h.test('a read-only provider receives the canvas and its edits reach nobody', async ({ pool, room }) => {
  const writer = pool.client(room, 'writer', { params: { token: token('w', { grants: { [room]: 'write' } }) } })
  await waitSynced(writer)
  addNode(writer.doc, 'by-writer', { x: 1 })

  const viewer = pool.client(room, 'viewer', { params: { token: token('v', { grants: { [room]: 'read' } }) } })
  await waitSynced(viewer)
  await waitFor(() => viewer.doc.getMap('nodes').has('by-writer'), { message: 'the viewer to receive the canvas' })

  addNode(viewer.doc, 'by-viewer', { x: 2 })
  // A write after the viewer's: once it is back at the writer, the viewer's would be too.
  addNode(writer.doc, 'marker', { x: 3 })
  const late = pool.client(room, 'late', { params: { token: token('l', { grants: { [room]: 'write' } }) } })
  await waitSynced(late)
  await waitFor(() => late.doc.getMap('nodes').has('marker'), { message: 'the marker to be stored' })
  await sleep(200)
  assert.equal(writer.doc.getMap('nodes').has('by-viewer'), false, 'a read-only edit reached a writer')
  assert.deepEqual(Object.keys(canvasJSON(late.doc).nodes).sort(), ['by-writer', 'marker'])
  // The viewer keeps its local edit (a CRDT cannot be told to undo it) but stays connected.
  assert.equal(viewer.provider.wsconnected, true)
})

h.test('without a valid token a provider never syncs', async ({ pool, room }) => {
  const anonymous = pool.client(room, 'anonymous', { maxBackoffTime: 200 })
  const forged = pool.client(room, 'forged', {
    maxBackoffTime: 200,
    params: { token: token('x', { grants: { [room]: 'write' } }).slice(0, -4) + 'AAAA' }
  })
  await waitFor(() => anonymous.events.connectionErrors + anonymous.events.closes.length >= 2 &&
    forged.events.connectionErrors + forged.events.closes.length >= 2, { message: 'refused connection attempts' })
  assert.equal(anonymous.provider.synced, false)
  assert.equal(forged.provider.synced, false)
  assert.equal(anonymous.doc.getMap('nodes').size, 0)
})

h.test('a connection ends with 4401 when its token expires', async ({ pool, room }) => {
  const shortLived = pool.client(room, 'short', {
    params: { token: token('s', { grants: { [room]: 'write' }, ttl: 2 }) },
    maxBackoffTime: 60_000
  })
  await waitSynced(shortLived)
  await waitFor(() => shortLived.events.closes.some((c) => c && c.code === 4401), {
    timeout: 15_000,
    message: 'a 4401 close',
    describe: () => JSON.stringify(shortLived.events.closes)
  })
  const close = shortLived.events.closes.find((c) => c && c.code === 4401)
  assert.match(close.reason, /expired/)
})
