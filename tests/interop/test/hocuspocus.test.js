// Stock @hocuspocus/provider (pinned) against /collab: sync, presence, several documents on one
// socket, tokens, SyncStatus meaning "stored", stateless messages, and y-websocket clients in the
// same rooms.

import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { HocuspocusProvider, HocuspocusProviderWebsocket } from '@hocuspocus/provider'
import { useServer } from '../lib/harness.js'
import { SECRET, token } from '../lib/tokens.js'
import { startServer } from '../lib/server.js'
import {
  addNode, canvasJSON, fetchRoomState, sleep, uniqueRoom, waitConverged, waitFor, waitSynced
} from '../lib/clients.js'

const h = useServer()
const secured = useServer({ env: { DOJO_JWT_SECRET: SECRET } })


const collabUrl = (server) => `ws://${server.host}:${server.port}/collab`

/** A socket several providers can share; torn down with the pool. */
function socket (pool, server) {
  const ws = new HocuspocusProviderWebsocket({
    url: collabUrl(server), WebSocketPolyfill: WebSocket, delay: 100, minDelay: 100, maxDelay: 1000
  })
  pool.clients.add({ destroy: () => ws.destroy() })
  return ws
}

/**
 * A stock HocuspocusProvider for document `name` (its own socket unless `websocketProvider`).
 * Records its events for assertions.
 */
function hocus (pool, server, name, label, { websocketProvider, token = '', doc = new Y.Doc() } = {}) {
  const events = { authenticated: [], denied: [], stateless: [], unsynced: [] }
  const ws = websocketProvider ?? socket(pool, server)
  const provider = new HocuspocusProvider({
    websocketProvider: ws,
    name,
    document: doc,
    token,
    onAuthenticated: ({ scope }) => events.authenticated.push(scope),
    onAuthenticationFailed: ({ reason }) => events.denied.push(reason),
    onStateless: ({ payload }) => events.stateless.push(payload),
    onUnsyncedChanges: ({ number }) => events.unsynced.push(number)
  })
  // With a socket passed in, the provider leaves attaching to us.
  provider.attach()
  const c = {
    name: label,
    doc,
    provider,
    events,
    destroy () {
      provider.destroy()
      doc.destroy()
    }
  }
  pool.clients.add(c)
  return c
}

const waitHocusSynced = (c) => waitFor(() => c.provider.isSynced && c.provider.unsyncedChanges === 0, {
  message: `${c.name} to be synced with no unsynced changes`,
  describe: () => `synced=${c.provider.isSynced} unsynced=${c.provider.unsyncedChanges} events=${JSON.stringify(c.events)}`
})

const nodeIds = (doc) => Object.keys(canvasJSON(doc).nodes).sort()

h.test('providers sync and concurrent edits converge', async ({ pool, server, room }) => {
  const a = hocus(pool, server, room, 'A')
  const b = hocus(pool, server, room, 'B')
  await Promise.all([waitHocusSynced(a), waitHocusSynced(b)])
  assert.deepEqual(a.events.authenticated, ['read-write'])
  for (let i = 0; i < 5; i++) {
    addNode(a.doc, `a-${i}`, { x: i })
    addNode(b.doc, `b-${i}`, { x: i })
  }
  addNode(a.doc, 'same', { x: 1 })
  addNode(b.doc, 'same', { x: 2 })
  await waitConverged([a, b], { extra: (d) => d.getMap('nodes').size === 11, message: 'A and B to converge' })
  await Promise.all([waitHocusSynced(a), waitHocusSynced(b)])
  // A newcomer loads it all, from the store.
  const c = hocus(pool, server, room, 'C')
  await waitHocusSynced(c)
  await waitConverged([a, b, c], { extra: (d) => d.getMap('nodes').size === 11 })
})

h.test('presence is added, updated and removed', async ({ pool, server, room }) => {
  const a = hocus(pool, server, room, 'A')
  const b = hocus(pool, server, room, 'B')
  await Promise.all([waitHocusSynced(a), waitHocusSynced(b)])
  a.provider.setAwarenessField('user', { name: 'ada' })
  await waitFor(() => b.provider.awareness.getStates().get(a.doc.clientID)?.user?.name === 'ada', {
    message: 'B to see A\'s presence'
  })
  a.provider.setAwarenessField('user', { name: 'ada lovelace' })
  await waitFor(() => b.provider.awareness.getStates().get(a.doc.clientID)?.user?.name === 'ada lovelace', {
    message: 'B to see A\'s updated presence'
  })
  a.destroy()
  await waitFor(() => !b.provider.awareness.getStates().has(a.doc.clientID), { message: 'A\'s presence to go' })
})

h.test('several documents share one socket', async ({ pool, server }) => {
  const ws = socket(pool, server)
  const rooms = [uniqueRoom('multi-a'), uniqueRoom('multi-b'), uniqueRoom('multi-c')]
  const mine = rooms.map((room, i) => hocus(pool, server, room, `mine-${i}`, { websocketProvider: ws }))
  await Promise.all(mine.map(waitHocusSynced))
  mine.forEach((c, i) => addNode(c.doc, `node-${i}`, { x: i }))
  const theirs = rooms.map((room, i) => hocus(pool, server, room, `theirs-${i}`))
  for (let i = 0; i < rooms.length; i++) {
    await waitConverged([mine[i], theirs[i]], { extra: (d) => d.getMap('nodes').has(`node-${i}`) })
    assert.deepEqual(nodeIds(theirs[i].doc), [`node-${i}`], 'each document keeps to itself')
  }
  addNode(theirs[1].doc, 'back', { x: 9 })
  await waitFor(() => mine[1].doc.getMap('nodes').has('back'), { message: 'an edit back over the shared socket' })
  assert.equal(mine[0].doc.getMap('nodes').has('back'), false)
})

h.test('stateless messages reach the document\'s other providers', async ({ pool, server, room }) => {
  const a = hocus(pool, server, room, 'A')
  const b = hocus(pool, server, room, 'B')
  const other = hocus(pool, server, uniqueRoom('elsewhere'), 'other')
  await Promise.all([a, b, other].map(waitHocusSynced))
  a.provider.sendStateless(JSON.stringify({ kind: 'cursor', at: 42 }))
  await waitFor(() => b.events.stateless.length === 1, { message: 'B to receive the stateless message' })
  assert.deepEqual(JSON.parse(b.events.stateless[0]), { kind: 'cursor', at: 42 })
  b.provider.sendStateless('pong')
  await waitFor(() => a.events.stateless.includes('pong'), { message: 'the answer to come back' })
  await sleep(100)
  assert.deepEqual(a.events.stateless, ['pong'], 'the sender does not get its own message')
  assert.deepEqual(other.events.stateless, [], 'another document gets nothing')
})

h.test('y-websocket and Hocuspocus clients edit one room together', async ({ pool, server, room }) => {
  const ywsA = pool.client(room, 'y-websocket A')
  const hp = hocus(pool, server, room, 'hocuspocus')
  const ywsB = pool.client(room, 'y-websocket B')
  await Promise.all([waitSynced(ywsA), waitSynced(ywsB), waitHocusSynced(hp)])
  addNode(ywsA.doc, 'from-yws', { x: 1 })
  addNode(hp.doc, 'from-hocus', { x: 2 })
  addNode(ywsB.doc, 'from-yws-b', { x: 3 })
  await waitConverged([ywsA, hp, ywsB], { extra: (d) => d.getMap('nodes').size === 3, message: 'both protocols to converge' })
  // Presence crosses protocols too.
  hp.provider.setAwarenessField('user', { name: 'hocus' })
  ywsA.provider.awareness.setLocalStateField('user', { name: 'yws' })
  await waitFor(() => ywsA.provider.awareness.getStates().get(hp.doc.clientID)?.user?.name === 'hocus' &&
    hp.provider.awareness.getStates().get(ywsA.doc.clientID)?.user?.name === 'yws', { message: 'presence both ways' })
})

h.test('UTF-8 names with spaces and slashes: both protocols meet in one room; a bad name is told why', async ({ pool, server }) => {
  // y-websocket puts the name in the URL as it is (the URL parser percent-encodes the space and
  // the letters); Hocuspocus sends it inside every message.
  const name = `Café board/${uniqueRoom('utf8')} 日本`
  const yws = pool.client(name, 'y-websocket')
  const hp = hocus(pool, server, name, 'hocuspocus')
  await Promise.all([waitSynced(yws), waitHocusSynced(hp)])
  addNode(yws.doc, 'from-yws', { x: 1 })
  addNode(hp.doc, 'from-hocus', { x: 2 })
  await waitConverged([yws, hp], { extra: (d) => d.getMap('nodes').size === 2, message: 'one room under a UTF-8 name' })
  assert.deepEqual(hp.events.denied, [])

  const bad = hocus(pool, server, 'tab\there', 'bad name')
  await waitFor(() => bad.events.denied.length > 0, { message: 'the bad name to be refused' })
  assert.match(bad.events.denied[0], /invalid document name: .*control/)
})

secured.test('tokens: read-write, read-only and denied', async ({ pool, server, room }) => {
  const writer = hocus(pool, server, room, 'writer', { token: token('w', { grants: { [room]: 'write' } }) })
  await waitHocusSynced(writer)
  assert.deepEqual(writer.events.authenticated, ['read-write'])
  addNode(writer.doc, 'by-writer', { x: 1 })
  await waitHocusSynced(writer)

  const viewer = hocus(pool, server, room, 'viewer', { token: token('v', { grants: { [room]: 'read' } }) })
  await waitFor(() => viewer.doc.getMap('nodes').has('by-writer'), { message: 'the viewer to receive the canvas' })
  assert.deepEqual(viewer.events.authenticated, ['readonly'])
  addNode(viewer.doc, 'by-viewer', { x: 2 })
  addNode(writer.doc, 'marker', { x: 3 })
  await waitFor(() => viewer.doc.getMap('nodes').has('marker'), { message: 'the marker to reach the viewer' })
  await sleep(200)
  assert.equal(writer.doc.getMap('nodes').has('by-viewer'), false, 'a read-only edit reached a writer')
  assert.ok(viewer.provider.unsyncedChanges > 0, 'the refused edit stays unsynced (SyncStatus 0)')

  const stranger = hocus(pool, server, room, 'stranger', { token: token('s', { grants: { 'some-other-room': 'write' } }) })
  const anonymous = hocus(pool, server, room, 'anonymous')
  await waitFor(() => stranger.events.denied.length > 0 && anonymous.events.denied.length > 0, {
    message: 'both to be denied'
  })
  assert.equal(stranger.doc.getMap('nodes').size, 0)
  assert.equal(anonymous.doc.getMap('nodes').size, 0)
  assert.match(anonymous.events.denied[0], /token/)
})

h.test('unsyncedChanges reaches 0 only once the update is stored', async () => {
  // A server of our own on a store of our own: it is killed (-9) the moment the provider says
  // "nothing unsynced", and the edit must be in the store when it comes back.
  const dir = mkdtempSync(join(tmpdir(), 'dojo-hocus-'))
  after(() => rmSync(dir, { recursive: true, force: true }))
  const databaseUrl = `sqlite:${join(dir, 'dojo.db')}`
  const room = uniqueRoom('durable')
  let server = await startServer({ databaseUrl })
  const ws = new HocuspocusProviderWebsocket({ url: collabUrl(server), WebSocketPolyfill: WebSocket, maxAttempts: 1 })
  const doc = new Y.Doc()
  const provider = new HocuspocusProvider({ websocketProvider: ws, name: room, document: doc })
  provider.attach()
  try {
    await waitFor(() => provider.isSynced && provider.unsyncedChanges === 0, { message: 'the provider to sync' })
    let killedAt = null
    provider.on('unsyncedChanges', ({ number }) => {
      if (number === 0 && killedAt === null) {
        killedAt = doc.getMap('nodes').size
        server.child.kill('SIGKILL')
      }
    })
    addNode(doc, 'must-survive', { x: 1, params: { prompt: 'saved before acknowledged' } })
    assert.equal(provider.unsyncedChanges, 1)
    await waitFor(() => killedAt !== null, { message: 'the acknowledgement' })
    await server.waitForExit()
  } finally {
    provider.destroy()
    ws.destroy()
  }
  server = await startServer({ databaseUrl })
  try {
    const stored = await fetchRoomState(server, room)
    assert.deepEqual(nodeIds(stored), ['must-survive'])
  } finally {
    await server.stop()
  }
})
