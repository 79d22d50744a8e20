// The wire format as a plain `ws` client sees it: y-protocols messages, one per binary frame,
// sync step 1 first. Plus the edges of the endpoint: room-name validation and the frame limit.

import assert from 'node:assert/strict'
import * as Y from 'yjs'
import * as awarenessProtocol from 'y-protocols/awareness'
import { useServer } from '../lib/harness.js'
import {
  MSG_AWARENESS, MSG_SYNC, RawClient, SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE,
  addNode, canvasJSON, encodeAwareness, encodeSyncStep1, encodeSyncUpdate, parseFrame, setParam,
  uniqueRoom, waitConverged, waitFor, waitSynced
} from '../lib/clients.js'

const h = useServer()

function assertAllFramesWellFormed (rc, who) {
  rc.frames.forEach((f, i) => {
    assert.equal(f.isBinary, true, `${who} frame #${i} is binary`)
    assert.doesNotThrow(() => parseFrame(f.data), `${who} frame #${i} is exactly one y-protocols message`)
  })
}

h.test('a raw ws client gets sync step 1 first, and exactly one message per binary frame', async ({ pool, room }) => {
  const raw = await pool.raw(room)
  const first = await raw.frameAt(0)
  assert.equal(first.isBinary, true, 'first frame is binary')
  assert.deepEqual([...first.data.subarray(0, 2)], [0, 0], 'first frame starts with [0, 0] (sync step 1)')
  const step1 = parseFrame(first.data)
  assert.equal(step1.type, MSG_SYNC)
  assert.equal(step1.syncType, SYNC_STEP1)
  assert.equal(Y.decodeStateVector(step1.payload).size, 0, 'a new room has an empty state vector')

  // our own sync step 1 is answered with sync step 2
  const rawDoc = new Y.Doc()
  raw.send(encodeSyncStep1(rawDoc))
  const { msg: step2 } = await raw.waitMessage((m) => m.type === MSG_SYNC && m.syncType === SYNC_STEP2, {
    message: 'sync step 2 in reply to our sync step 1'
  })
  Y.applyUpdate(rawDoc, step2.payload)

  // a stock provider joins and makes a burst of edits; the raw client sees them as updates
  const a = pool.client(room, 'A')
  await waitSynced(a)
  a.provider.awareness.setLocalState({ user: { name: 'alice' } })
  for (let i = 0; i < 40; i++) addNode(a.doc, `n${i}`, { x: i, params: { i } })
  for (let i = 0; i < 40; i++) setParam(a.doc, `n${i}`, 'touched', true)

  const expectedSv = Buffer.from(Y.encodeStateVector(a.doc))
  await waitFor(() => {
    for (const f of raw.frames) {
      const m = parseFrame(f.data)
      if (m.type === MSG_SYNC && m.syncType !== SYNC_STEP1) Y.applyUpdate(rawDoc, m.payload)
    }
    return Buffer.from(Y.encodeStateVector(rawDoc)).equals(expectedSv)
  }, { message: 'raw client to receive all of A\'s updates' })
  assert.deepEqual(canvasJSON(rawDoc), canvasJSON(a.doc))

  const kinds = raw.frames.map((f) => parseFrame(f.data)).map((m) => m.type === MSG_SYNC ? `sync${m.syncType}` : `type${m.type}`)
  assert.ok(kinds.includes(`sync${SYNC_UPDATE}`), `A's edits arrive as sync update messages (got ${[...new Set(kinds)]})`)
  await raw.waitMessage((m) => {
    if (m.type !== MSG_AWARENESS) return false
    const aw = new awarenessProtocol.Awareness(new Y.Doc())
    awarenessProtocol.applyAwarenessUpdate(aw, m.payload, 'test')
    const seen = aw.getStates().get(a.doc.clientID)
    aw.destroy()
    return seen?.user?.name === 'alice'
  }, { message: 'A\'s awareness state as a [1, ...] frame' })
  assertAllFramesWellFormed(raw, 'raw client')

  // an update sent by the raw client reaches the stock provider
  const rawEdit = new Y.Doc()
  Y.applyUpdate(rawEdit, Y.encodeStateAsUpdate(rawDoc))
  let rawUpdate = null
  rawEdit.on('update', (u) => { rawUpdate = u })
  addNode(rawEdit, 'from-raw', { type: 'raw', params: { ok: true } })
  raw.send(encodeSyncUpdate(rawUpdate))
  await waitFor(() => a.doc.getMap('nodes').has('from-raw'), { message: 'A to receive the raw client\'s update' })
  assert.deepEqual(a.doc.getMap('nodes').get('from-raw').toJSON(), {
    id: 'from-raw', type: 'raw', position: { x: 0, y: 0 }, data: { ok: true }
  })

  // a second raw client joining the now non-empty room still gets sync step 1 first,
  // carrying the room's state vector
  const raw2 = await pool.raw(room)
  const first2 = await raw2.frameAt(0)
  assert.deepEqual([...first2.data.subarray(0, 2)], [0, 0], 'first frame in a non-empty room starts with [0, 0]')
  const sv2 = Y.decodeStateVector(parseFrame(first2.data).payload)
  assert.ok(sv2.has(a.doc.clientID), 'server state vector includes A')
  assertAllFramesWellFormed(raw2, 'second raw client')
})

h.test('awareness from a raw client reaches a stock provider', async ({ pool, room }) => {
  const a = pool.client(room, 'A')
  await waitSynced(a)
  const raw = await pool.raw(room)
  const rawDoc = new Y.Doc()
  const aw = new awarenessProtocol.Awareness(rawDoc)
  aw.setLocalState({ user: { name: 'raw' } })
  raw.send(encodeAwareness(awarenessProtocol.encodeAwarenessUpdate(aw, [rawDoc.clientID])))
  await waitFor(() => a.provider.awareness.getStates().get(rawDoc.clientID)?.user?.name === 'raw', {
    message: 'A to see the raw client\'s awareness state'
  })
  aw.destroy()
  raw.terminate()
  await waitFor(() => !a.provider.awareness.getStates().has(rawDoc.clientID), {
    timeout: 8_000, message: 'A to drop the raw client\'s awareness state after its socket died'
  })
})

h.test('stock providers work with the longest valid room name', async ({ pool }) => {
  const room = (uniqueRoom('max') + ':' + 'x'.repeat(128)).slice(0, 128)
  assert.equal(room.length, 128)
  const a = pool.client(room, 'A')
  const b = pool.client(room, 'B')
  await Promise.all([waitSynced(a), waitSynced(b)])
  addNode(a.doc, 'n', {})
  await waitConverged([a, b], { extra: (d) => d.getMap('nodes').has('n') })
})

h.test('invalid room names are refused at the upgrade', async () => {
  // Percent-encoded as they would arrive: too long, a NUL, a newline, a right-to-left override,
  // 65 two-byte letters (130 bytes).
  for (const bad of ['x'.repeat(129), 'a%00b', 'line%0Abreak', 'abc%E2%80%AEtxt', '%C3%A9'.repeat(65)]) {
    const err = await RawClient.connect(h.server.roomUrl(bad), { timeout: 10_000 }).then(
      (rc) => { rc.terminate(); return null },
      (e) => e)
    assert.ok(err, `room name ${JSON.stringify(bad)} must not be accepted`)
    assert.ok(err.statusCode >= 400 && err.statusCode < 500,
      `room name ${JSON.stringify(bad)} refused with an HTTP 4xx (got ${err.statusCode ?? err.message})`)
  }
})

// The exact close code for a 16 MiB+ frame is not asserted here: the server refuses the frame
// from its header and closes while the client is still writing megabytes, so the kernel resets
// the connection and the client usually sees 1006 instead of the 1009 close frame. 1009 itself is
// checked with a small limit in limits.test.js.
h.test('a frame above the 16 MiB limit closes the connection, and the room lives on', async ({ pool, room }) => {
  const a = pool.client(room, 'A')
  await waitSynced(a)
  addNode(a.doc, 'before', {})

  const raw = await pool.raw(room)
  await raw.frameAt(0)
  // a well-formed sync update frame just over 16 MiB
  const big = new Y.Doc()
  big.getText('t').insert(0, 'x'.repeat(16 * 1024 * 1024 + 1024))
  const frame = encodeSyncUpdate(Y.encodeStateAsUpdate(big))
  assert.ok(frame.length > 16 * 1024 * 1024)
  raw.send(frame)
  await waitFor(() => raw.closed, { timeout: 20_000, message: 'the oversized frame to close the connection' })
  assert.ok([1009, 1006].includes(raw.closed.code), `closed with 1009 (or 1006 after a reset), got ${JSON.stringify(raw.closed)}`)

  // the room and the other client are unaffected, and the oversized update was not applied
  const b = pool.client(room, 'B')
  await waitSynced(b)
  await waitConverged([a, b], { extra: (d) => d.getMap('nodes').has('before') })
  assert.equal(b.doc.getText('t').length, 0)
  assert.equal(a.provider.wsconnected, true)
})
