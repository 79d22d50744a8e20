// The deployment topology, tested with stock clients through the load balancer: the cluster of
// scripts/cluster.sh (HAProxy with deploy/haproxy.cfg, two dojo-server instances sharing
// PostgreSQL and Redis, two dojo-worker). Stories:
//   - stock clients of one room meet on one instance and converge;
//   - SIGKILL the instance holding a room: its clients reconnect through HAProxy to the other
//     and nothing they saw is lost (and what a client saw acknowledged is in the store, proved
//     with a room whose only clients never come back);
//   - a rolling restart (SIGTERM = drain, start again, then the other) with clients editing
//     all along: every room stays available and every edit is in every copy at the end.
// Every wait is bounded and says what it waited for; nothing asserts how long anything took
// (drain times are reported as diagnostics).

import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { HocuspocusProvider } from '@hocuspocus/provider'
import { LocalCluster } from '../lib/cluster.js'
import {
  ClientPool, MSG_SYNC, RawClient, SYNC_UPDATE, addNode, clientState, encodeSyncUpdate,
  fetchRoomState, parseFrame, uniqueRoom, waitConverged, waitFor, waitSynced
} from '../lib/clients.js'

const WAIT = 30_000
// Each stock WebsocketProvider adds a process 'exit' listener; a test holds more than ten.
process.setMaxListeners(100)
let cluster = null

before(async () => {
  cluster = await LocalCluster.start()
})

after(async () => {
  if (cluster) await cluster.stop()
})

/** Runs `fn` with a client pool on the load balancer; failures carry the cluster's logs. */
function clusterTest (name, fn) {
  test(name, { timeout: 240_000 }, async (t) => {
    assert.ok(cluster, 'the cluster did not start (see the before hook)')
    const pool = new ClientPool(cluster)
    try {
      await waitIdle()
      await fn({ t, pool })
    } catch (err) {
      if (err && typeof err.message === 'string') err.message += `\n${cluster.logs()}`
      throw err
    } finally {
      pool.destroyAll()
    }
  })
}

/** Waits until no WebSocket is open on either instance (the previous test's clients left). */
async function waitIdle () {
  let counts = null
  await waitFor(async () => {
    counts = await cluster.connections()
    return counts.every((c) => c === 0 || c === null)
  }, { timeout: WAIT, message: 'both instances to have no connections left', describe: () => `connections: ${JSON.stringify(counts)}` })
}

/**
 * The instance (1 or 2) holding exactly `count` connections while the other holds none (or is
 * down).
 */
async function holderOf (count, what) {
  let counts = null
  await waitFor(async () => {
    counts = (await cluster.connections()).map((c) => c ?? 0)
    return (counts[0] === count && counts[1] === 0) || (counts[0] === 0 && counts[1] === count)
  }, { timeout: WAIT, message: `${what}: all ${count} connections on one instance`, describe: () => `connections: ${JSON.stringify(counts)}` })
  return counts[0] === count ? 1 : 2
}

function nodeIds (doc) {
  return [...doc.getMap('nodes').keys()].sort()
}

async function waitReconnected (clients, what) {
  await waitFor(() => clients.every((c) => c.provider.wsconnected && c.provider.synced), {
    timeout: WAIT,
    message: what,
    describe: () => clients.map(clientState).join('\n')
  })
}

/**
 * Writes each node through a raw socket and waits for the server's echo carrying it (the echo
 * goes out only once the update is stored). Returns the document rebuilt from the echoes.
 */
async function writeAcknowledged (rc, doc, ids) {
  const echoed = new Y.Doc()
  let from = 0
  for (const id of ids) {
    let update = null
    const capture = (u) => { update = u }
    doc.on('update', capture)
    addNode(doc, id, { type: 'raw' })
    doc.off('update', capture)
    rc.send(encodeSyncUpdate(update))
    const { index } = await rc.waitMessage((m) => {
      if (m.type !== MSG_SYNC || m.syncType !== SYNC_UPDATE) return false
      Y.applyUpdate(echoed, m.payload)
      return echoed.getMap('nodes').has(id)
    }, { from, timeout: WAIT, message: `the server's echo of ${id} (sent once stored)` })
    from = index + 1
  }
  return echoed
}

clusterTest('stock clients through HAProxy meet on one instance and converge', async ({ pool }) => {
  const room = uniqueRoom('cluster-converge')
  const clients = ['A', 'B', 'C'].map((n) => pool.client(room, n))
  await Promise.all(clients.map((c) => waitSynced(c, WAIT)))

  // A Hocuspocus provider in the same room: /collab?room= puts it with the y-websocket clients.
  const doc = new Y.Doc()
  const hocus = new HocuspocusProvider({ url: `${cluster.collabUrl}?room=${room}`, name: room, document: doc, token: '', WebSocketPolyfill: WebSocket })
  const h = { name: 'H', doc, provider: hocus, events: { connectionErrors: 0, closes: [] }, destroy () { hocus.destroy(); doc.destroy() } }
  pool.clients.add(h)
  await waitFor(() => hocus.synced, { timeout: WAIT, message: 'the Hocuspocus provider to sync' })

  const holder = await holderOf(4, 'three y-websocket clients and one Hocuspocus client of one room')

  for (const c of [...clients, h]) {
    for (let i = 0; i < 5; i++) addNode(c.doc, `${c.name}-${i}`, { x: i })
  }
  const json = await waitConverged([...clients, h], {
    timeout: WAIT,
    extra: (d) => d.getMap('nodes').size === 20,
    message: 'four clients\' 20 concurrent nodes to converge'
  })
  assert.equal(Object.keys(json.nodes).length, 20)

  // A client through HAProxy later on sees it all too (from the instance holding the room).
  const late = pool.client(room, 'late')
  await waitSynced(late, WAIT)
  await waitConverged([clients[0], late], { timeout: WAIT, extra: (d) => d.getMap('nodes').size === 20, message: 'a late joiner to get all 20 nodes' })
  assert.equal(await holderOf(5, 'the late joiner with the others'), holder)
})

clusterTest('SIGKILL of the instance holding a room: its clients move to the other, nothing lost', async ({ t, pool }) => {
  const room = uniqueRoom('cluster-kill')
  const a = pool.client(room, 'A')
  const b = pool.client(room, 'B')
  await Promise.all([waitSynced(a, WAIT), waitSynced(b, WAIT)])
  const holder = await holderOf(2, 'the room\'s two clients')
  const survivor = 3 - holder
  t.diagnostic(`room on instance ${holder}; killing it`)

  // Seen: every node B has received was stored before it was broadcast.
  const seen = []
  for (let i = 0; i < 10; i++) {
    addNode(a.doc, `seen-${i}`, { x: i })
    seen.push(`seen-${i}`)
  }
  await waitFor(() => seen.every((id) => b.doc.getMap('nodes').has(id)), { timeout: WAIT, message: 'B to see A\'s 10 nodes' })

  // A second room whose only client writes straight to the same instance and never reconnects:
  // after the kill, whatever it got acknowledged can only come from PostgreSQL.
  const stored = uniqueRoom('cluster-kill-stored')
  const rc = await RawClient.connect(cluster.direct(holder).roomUrl(stored), { timeout: WAIT })
  pool.sockets.add(rc)
  const rawDoc = new Y.Doc()
  const acknowledged = Array.from({ length: 10 }, (_, i) => `ack-${i}`)
  await writeAcknowledged(rc, rawDoc, acknowledged)

  // In flight at the moment of the crash: A still holds them and sends them after reconnecting.
  const inFlight = Array.from({ length: 5 }, (_, i) => `inflight-${i}`)
  for (const id of inFlight) addNode(a.doc, id)

  await cluster.kill(holder)
  await waitFor(() => !a.provider.wsconnected || !b.provider.wsconnected || a.events.closes.length > 0, {
    timeout: WAIT, message: 'the clients to notice the crash', describe: () => [a, b].map(clientState).join('\n')
  })
  await waitReconnected([a, b], 'A and B to reconnect through HAProxy and resync')
  await holderOf(2, 'A and B reconnected').then((n) => assert.equal(n, survivor, `A and B are on instance ${survivor} now`))

  // They got there by HAProxy retrying the refused connection on the other instance; from now
  // on, with the dead instance marked down, the hash itself sends the room there.
  await cluster.waitHaproxy(holder, 'DOWN')

  // Live on the survivor.
  addNode(b.doc, 'after-kill')
  const expected = [...seen, ...inFlight, 'after-kill'].sort()
  await waitConverged([a, b], { timeout: WAIT, extra: (d) => expected.every((id) => d.getMap('nodes').has(id)), message: 'A and B to converge on the survivor with everything' })
  const fresh = pool.client(room, 'fresh')
  await waitSynced(fresh, WAIT)
  await waitConverged([a, b, fresh], { timeout: WAIT, extra: (d) => d.getMap('nodes').size === expected.length, message: 'a fresh client to get the whole room' })
  assert.deepEqual(nodeIds(fresh.doc), expected)

  // The room nobody came back to: read through HAProxy, i.e. from the survivor's store.
  const recovered = await fetchRoomState(cluster, stored, WAIT)
  assert.deepEqual(nodeIds(recovered), acknowledged, 'every update acknowledged before the crash is stored')

  // Whole again for the next test; the room's clients stay where they are.
  await cluster.startServer(holder)
})

clusterTest('a rolling restart (drain, start, then the other) keeps every room available and loses nothing', async ({ t, pool }) => {
  const rooms = [1, 2, 3, 4].map((i) => uniqueRoom(`cluster-rolling-${i}`))
  const clients = rooms.flatMap((room, r) => ['A', 'B'].map((n) => pool.client(room, `${n}${r}`)))
  await Promise.all(clients.map((c) => waitSynced(c, WAIT)))
  const written = new Map(clients.map((c) => [c, []]))

  // Everybody edits all along: one node every 50 ms per client, wherever its socket is.
  let editing = true
  const editors = clients.map(async (c) => {
    for (let i = 0; editing; i++) {
      const id = `${c.name}-${i}`
      addNode(c.doc, id, { x: i })
      written.get(c).push(id)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  })

  /** A new client can join every room through HAProxy, gets the room's content and its own edit reaches the others. */
  const checkAvailable = async (phase) => {
    await Promise.all(rooms.map(async (room, r) => {
      const probe = pool.client(room, `probe-${phase}-${r}`)
      await waitSynced(probe, WAIT)
      const before = written.get(clients[2 * r]).slice(0, 5)
      await waitFor(() => before.every((id) => probe.doc.getMap('nodes').has(id)), { timeout: WAIT, message: `${phase}: a new client of room ${r} to receive the room's first edits` })
      addNode(probe.doc, `probe-${phase}`)
      written.get(clients[2 * r]).push(`probe-${phase}`)
      await waitFor(() => clients.slice(2 * r, 2 * r + 2).every((c) => c.doc.getMap('nodes').has(`probe-${phase}`)), {
        timeout: WAIT, message: `${phase}: room ${r}'s clients to receive the new client's edit`,
        describe: () => clients.slice(2 * r, 2 * r + 2).map(clientState).join('\n')
      })
      probe.destroy()
    }))
  }

  await checkAvailable('start')
  for (const n of [1, 2]) {
    // A client straight on the instance keeps writing (an update every 5 ms, without waiting)
    // while the drain begins. What it saw acknowledged (echoed, so stored) must be in the store.
    const stored = uniqueRoom(`cluster-rolling-stored-${n}`)
    const rc = await RawClient.connect(cluster.direct(n).roomUrl(stored), { timeout: WAIT })
    pool.sockets.add(rc)
    const echoed = new Y.Doc()
    rc.ws.on('message', (data) => {
      const msg = parseFrame(Buffer.from(data))
      if (msg.type === MSG_SYNC && msg.syncType === SYNC_UPDATE) Y.applyUpdate(echoed, msg.payload)
    })
    const rawDoc = new Y.Doc()
    rawDoc.on('update', (u) => { if (rc.ws.readyState === WebSocket.OPEN) rc.send(encodeSyncUpdate(u)) })
    let fired = 0
    const firing = (async () => {
      while (!rc.closed && fired < 5000) {
        addNode(rawDoc, `fired-${fired++}`)
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    })()
    await waitFor(() => fired >= 20, { timeout: WAIT, message: 'the raw client to start writing' })

    const connections = await cluster.connections()
    const secs = await cluster.drain(n)
    t.diagnostic(`instance ${n} drained in ${secs} s with ${connections[n - 1]} connections`)
    await firing
    await waitFor(() => rc.closed, { timeout: WAIT, message: `the raw client of instance ${n} to be closed` })
    assert.deepEqual(rc.closed, { code: 1001, reason: 'server shutting down' }, 'a drain closes with 1001 and says why')
    const acknowledged = nodeIds(echoed)
    const recovered = await fetchRoomState(cluster, stored, WAIT)
    t.diagnostic(`instance ${n}: ${fired} updates written, ${acknowledged.length} acknowledged before the drain closed the socket, ${nodeIds(recovered).length} stored`)
    assert.ok(acknowledged.every((id) => recovered.getMap('nodes').has(id)),
      `every update acknowledged before the drain is stored (acknowledged ${acknowledged}, stored ${nodeIds(recovered)})`)

    await cluster.waitHaproxy(n, 'DOWN')
    await waitReconnected(clients, `every client to be connected and synced after instance ${n} drained`)
    await checkAvailable(`drained-${n}`)
    await cluster.startServer(n)
    await checkAvailable(`restarted-${n}`)
  }
  editing = false
  await Promise.all(editors)

  // Every client was told to go away (1001) at least once: after the first drain, every client
  // is on instance 2, which drains second.
  for (const c of clients) {
    assert.ok(c.events.closes.some((e) => e && e.code === 1001), `${c.name} was closed with 1001 (closes: ${JSON.stringify(c.events.closes)})`)
  }

  for (const [r, room] of rooms.entries()) {
    const pair = clients.slice(2 * r, 2 * r + 2)
    const expected = pair.flatMap((c) => written.get(c)).sort()
    const fresh = pool.client(room, `fresh-${r}`)
    await waitSynced(fresh, WAIT)
    await waitConverged([...pair, fresh], {
      timeout: WAIT,
      extra: (d) => d.getMap('nodes').size === expected.length,
      message: `room ${r}: its clients and a fresh one to hold all ${expected.length} edits`
    })
    assert.deepEqual(nodeIds(fresh.doc), expected, `room ${r}: every edit made during the rolling restart is there`)
  }
})
