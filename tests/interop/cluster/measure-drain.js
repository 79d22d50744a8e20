// Measures a graceful drain (not a test: a figure for docs/deployment.md).
//
//   node cluster/measure-drain.js [clients=200] [rooms=50]
//
// Starts the local cluster (scripts/cluster.sh, BIN_DIR as for the cluster tests), connects
// `clients` stock y-websocket providers spread over `rooms` rooms through HAProxy, then drains
// each instance in turn (SIGTERM, wait for exit) and reports, per drain: the connections the
// instance held, how long until it exited, and how long until every client was connected and
// synced again (through HAProxy, on the other instance). Then it checks that every client's
// edit made before the drain is in every copy of its room.

import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { LocalCluster } from '../lib/cluster.js'
import { addNode, uniqueRoom, waitFor } from '../lib/clients.js'

const clientCount = Number(process.argv[2] ?? 200)
const roomCount = Number(process.argv[3] ?? 50)
const WAIT = 120_000
process.setMaxListeners(0) // each provider adds a process 'exit' listener

const cluster = await LocalCluster.start()
const clients = []
try {
  const rooms = Array.from({ length: roomCount }, (_, i) => uniqueRoom(`drain-${i}`))
  for (let i = 0; i < clientCount; i++) {
    const doc = new Y.Doc()
    const provider = new WebsocketProvider(cluster.roomsUrl, rooms[i % roomCount], doc, { WebSocketPolyfill: WebSocket, disableBc: true })
    clients.push({ doc, provider, room: i % roomCount })
  }
  const allSynced = () => clients.every((c) => c.provider.wsconnected && c.provider.synced)
  await waitFor(allSynced, { timeout: WAIT, interval: 20, message: 'every client to sync' })
  clients.forEach((c, i) => addNode(c.doc, `client-${i}`))

  for (const n of [1, 2]) {
    const held = (await cluster.connections())[n - 1]
    const started = Date.now()
    const drainSecs = await cluster.drain(n)
    await waitFor(allSynced, { timeout: WAIT, interval: 20, message: `every client to be back after instance ${n} drained` })
    const backSecs = (Date.now() - started) / 1000
    console.log(`instance ${n}: ${held} connections; exited ${drainSecs} s after SIGTERM; every client connected and synced again after ${backSecs.toFixed(2)} s`)
    await cluster.startServer(n)
  }

  await waitFor(() => clients.every((c) => clients.filter((o) => o.room === c.room).every((o) => o.doc.getMap('nodes').has(`client-${clients.indexOf(c)}`))), {
    timeout: WAIT, interval: 50, message: 'every edit in every copy of its room'
  })
  console.log(`every one of ${clientCount} edits is in every copy of its room`)
} finally {
  for (const c of clients) { c.provider.destroy(); c.doc.destroy() }
  await cluster.stop()
}
