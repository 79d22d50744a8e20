// Stock y-websocket clients, raw `ws` clients and bounded waits.
//
// Every wait here has a timeout and fails with a message that says what it was waiting for,
// so a broken server makes a test fail, never hang.

import { randomBytes } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as encoding from 'lib0/encoding'
import * as decoding from 'lib0/decoding'
import * as syncProtocol from 'y-protocols/sync'

export const DEFAULT_TIMEOUT_MS = 15_000

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** A room name unique to this process and call, within the server's [A-Za-z0-9_.:-]{1,128}. */
let roomCounter = 0
export function uniqueRoom (label) {
  roomCounter += 1
  const safe = String(label).replace(/[^A-Za-z0-9_.:-]/g, '-').slice(0, 60)
  return `interop-${safe}-${process.pid}-${roomCounter}-${randomBytes(4).toString('hex')}`
}

/**
 * Polls `predicate` until it returns truthy; rejects with `message` (plus `describe()` output)
 * after `timeout` ms. Returns the truthy value.
 */
export async function waitFor (predicate, { timeout = DEFAULT_TIMEOUT_MS, interval = 25, message = 'condition', describe } = {}) {
  const deadline = Date.now() + timeout
  let lastErr = null
  for (;;) {
    try {
      const v = await predicate()
      if (v) return v
      lastErr = null
    } catch (err) {
      lastErr = err
    }
    if (Date.now() >= deadline) {
      let detail = ''
      if (describe) {
        try { detail = '\n' + describe() } catch (err) { detail = `\n(describe failed: ${err})` }
      }
      if (lastErr) detail += `\nlast predicate error: ${lastErr.stack || lastErr}`
      throw new Error(`timed out after ${timeout} ms waiting for: ${message}${detail}`)
    }
    await sleep(interval)
  }
}

/** Races `promise` against a timeout that rejects with `message`. */
export function withTimeout (promise, timeout, message) {
  let timer
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for: ${message}`)), timeout)
    })
  ])
}

/**
 * Keeps every client a test creates so that all of them are torn down at the end, pass or fail.
 */
export class ClientPool {
  constructor (server) {
    this.server = server
    this.clients = new Set()
    this.sockets = new Set()
  }

  /**
   * A stock WebsocketProvider with its own Y.Doc, connected to `room`.
   * @returns {{ name: string, doc: Y.Doc, provider: WebsocketProvider, destroy: () => void }}
   */
  client (room, name = 'client', { connect = true, doc = new Y.Doc(), ...opts } = {}) {
    const provider = new WebsocketProvider(this.server.roomsUrl, room, doc, {
      WebSocketPolyfill: WebSocket,
      disableBc: true,
      connect,
      ...opts
    })
    const events = { connectionErrors: 0, closes: [] }
    provider.on('connection-error', () => { events.connectionErrors += 1 })
    provider.on('connection-close', (ev) => {
      events.closes.push(ev ? { code: ev.code, reason: ev.reason } : null)
    })
    const c = {
      name,
      doc,
      provider,
      events,
      destroyed: false,
      destroy () {
        if (c.destroyed) return
        c.destroyed = true
        provider.destroy()
        doc.destroy() // also destroys the Awareness (and its 15 s renewal interval)
      }
    }
    this.clients.add(c)
    return c
  }

  /** A raw `ws` client (see RawClient). */
  async raw (room, opts) {
    const rc = await RawClient.connect(this.server.roomUrl(room), opts)
    this.sockets.add(rc)
    return rc
  }

  destroyAll () {
    for (const c of this.clients) {
      try { c.destroy() } catch { /* keep tearing down */ }
    }
    this.clients.clear()
    for (const s of this.sockets) {
      try { s.terminate() } catch { /* keep tearing down */ }
    }
    this.sockets.clear()
  }
}

/** Describes where a client is, for failure messages. */
export function clientState (c) {
  const p = c.provider
  return `${c.name}: clientID=${c.doc.clientID} wsconnected=${p.wsconnected} wsconnecting=${p.wsconnecting} ` +
    `synced=${p.synced} connErrors=${c.events.connectionErrors} closes=${JSON.stringify(c.events.closes)} ` +
    `sv=${describeStateVector(c.doc)}`
}

/** Waits for provider.synced === true (the 'sync' event with true). */
export async function waitSynced (c, timeout = DEFAULT_TIMEOUT_MS) {
  if (c.provider.synced) return
  await waitFor(() => c.provider.synced, {
    timeout,
    message: `${c.name} to reach synced`,
    describe: () => clientState(c)
  })
}

export function describeStateVector (doc) {
  const sv = Y.decodeStateVector(Y.encodeStateVector(doc))
  return JSON.stringify(Object.fromEntries([...sv.entries()].sort((a, b) => a[0] - b[0])))
}

export function canvasJSON (doc) {
  return {
    nodes: doc.getMap('nodes').toJSON(),
    edges: doc.getMap('edges').toJSON()
  }
}

function bytesEqual (a, b) {
  return Buffer.from(a).equals(Buffer.from(b))
}

/**
 * Waits until every doc has the same state vector and the same canvas JSON, and `extra(doc)`
 * (if given) holds for each. Returns the common JSON.
 */
export async function waitConverged (clients, { timeout = 20_000, interval = 25, extra, message = 'documents to converge', json = canvasJSON } = {}) {
  await waitFor(() => {
    const svs = clients.map((c) => Y.encodeStateVector(c.doc))
    if (!svs.every((sv) => bytesEqual(sv, svs[0]))) return false
    const jsons = clients.map((c) => json(c.doc))
    if (!jsons.every((j) => isDeepStrictEqual(j, jsons[0]))) return false
    if (extra && !clients.every((c) => extra(c.doc))) return false
    return true
  }, {
    timeout,
    interval,
    message,
    describe: () => clients.map((c) => {
      const j = json(c.doc)
      const counts = Object.fromEntries(Object.entries(j).map(([k, v]) => [k, v && typeof v === 'object' ? Object.keys(v).length : v]))
      return `  ${clientState(c)} sizes=${JSON.stringify(counts)} pendingStructs=${c.doc.store.pendingStructs !== null}`
    }).join('\n')
  })
  return json(clients[0].doc)
}

/* ---------------------------------------------------------------------------------------- */
/* Canvas schema helpers: nodes: id -> Y.Map{id,type,position:{x,y},data:Y.Map}, edges: id -> Y.Map */

export function addNode (doc, id, { type = 'llm', x = 0, y = 0, params = {} } = {}) {
  const node = new Y.Map()
  node.set('id', id)
  node.set('type', type)
  node.set('position', { x, y })
  const data = new Y.Map()
  for (const [k, v] of Object.entries(params)) data.set(k, v)
  node.set('data', data)
  doc.getMap('nodes').set(id, node)
  return node
}

export function moveNode (doc, id, x, y) {
  const node = doc.getMap('nodes').get(id)
  if (!node) throw new Error(`moveNode: no node ${id}`)
  node.set('position', { x, y })
}

export function setParam (doc, id, key, value) {
  const node = doc.getMap('nodes').get(id)
  if (!node) throw new Error(`setParam: no node ${id}`)
  node.get('data').set(key, value)
}

export function addEdge (doc, id, source, target, sourceHandle = 'out', targetHandle = 'in') {
  const edge = new Y.Map()
  edge.set('id', id)
  edge.set('source', source)
  edge.set('sourceHandle', sourceHandle)
  edge.set('target', target)
  edge.set('targetHandle', targetHandle)
  doc.getMap('edges').set(id, edge)
  return edge
}

/* ---------------------------------------------------------------------------------------- */
/* Raw y-protocols over a plain `ws` socket                                                 */

export const MSG_SYNC = 0
export const MSG_AWARENESS = 1
export const MSG_AUTH = 2
export const MSG_QUERY_AWARENESS = 3
export const SYNC_STEP1 = 0
export const SYNC_STEP2 = 1
export const SYNC_UPDATE = 2

/**
 * Parses one frame as exactly one y-protocols message. Throws if the frame is malformed or
 * carries trailing bytes (i.e. more than one message in a frame).
 * @returns {{ type: number, syncType?: number, payload?: Uint8Array }}
 */
export function parseFrame (buf) {
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
  const dec = decoding.createDecoder(bytes)
  const type = decoding.readVarUint(dec)
  let msg
  switch (type) {
    case MSG_SYNC: {
      const syncType = decoding.readVarUint(dec)
      if (syncType > 2) throw new Error(`unknown sync message type ${syncType}`)
      const payload = decoding.readVarUint8Array(dec)
      msg = { type, syncType, payload }
      break
    }
    case MSG_AWARENESS:
      msg = { type, payload: decoding.readVarUint8Array(dec) }
      break
    case MSG_AUTH: {
      const authType = decoding.readVarUint(dec)
      msg = { type, authType, reason: decoding.readVarString(dec) }
      break
    }
    case MSG_QUERY_AWARENESS:
      msg = { type }
      break
    default:
      throw new Error(`unknown message type ${type}`)
  }
  if (dec.pos !== bytes.length) {
    throw new Error(`frame has ${bytes.length - dec.pos} trailing bytes after one message ` +
      `(type ${type}); first bytes: [${Array.from(bytes.slice(0, 16)).join(', ')}]`)
  }
  return msg
}

export function encodeSyncStep1 (doc) {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MSG_SYNC)
  syncProtocol.writeSyncStep1(enc, doc)
  return encoding.toUint8Array(enc)
}

export function encodeSyncUpdate (update) {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MSG_SYNC)
  syncProtocol.writeUpdate(enc, update)
  return encoding.toUint8Array(enc)
}

export function encodeAwareness (update) {
  const enc = encoding.createEncoder()
  encoding.writeVarUint(enc, MSG_AWARENESS)
  encoding.writeVarUint8Array(enc, update)
  return encoding.toUint8Array(enc)
}

/**
 * A plain `ws` client that records every frame it receives (binary flag + bytes).
 */
export class RawClient {
  constructor (ws) {
    this.ws = ws
    this.frames = [] // { isBinary, data: Buffer }
    this.closed = null
    this._waiters = new Set()
    ws.on('message', (data, isBinary) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
      this.frames.push({ isBinary, data: buf })
      this._notify()
    })
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
      this._notify()
    })
    ws.on('error', (err) => { this.error = err })
  }

  static connect (url, { timeout = DEFAULT_TIMEOUT_MS, ...wsOpts } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, wsOpts)
      // record frames that might arrive in the same tick as 'open'
      const rc = new RawClient(ws)
      const timer = setTimeout(() => {
        ws.terminate()
        reject(new Error(`timed out after ${timeout} ms opening ${url}`))
      }, timeout)
      ws.once('open', () => { clearTimeout(timer); resolve(rc) })
      ws.once('unexpected-response', (_req, res) => {
        clearTimeout(timer)
        const err = new Error(`upgrade refused for ${url}: HTTP ${res.statusCode}`)
        err.statusCode = res.statusCode
        res.resume()
        ws.terminate()
        reject(err)
      })
      ws.once('error', (err) => { clearTimeout(timer); reject(err) })
    })
  }

  _notify () {
    for (const w of this._waiters) w()
  }

  /** Waits until frames.length > index (or throws on close/timeout) and returns frames[index]. */
  async frameAt (index, timeout = DEFAULT_TIMEOUT_MS) {
    await waitFor(() => {
      if (this.frames.length > index) return true
      if (this.closed) throw new Error(`socket closed (${JSON.stringify(this.closed)}) before frame #${index}`)
      return false
    }, { timeout, interval: 10, message: `raw frame #${index} (have ${this.frames.length})` })
    return this.frames[index]
  }

  /** Waits for the first frame at or after `from` whose parsed message satisfies `pred`. */
  async waitMessage (pred, { from = 0, timeout = DEFAULT_TIMEOUT_MS, message = 'matching message' } = {}) {
    let i = from
    return waitFor(() => {
      for (; i < this.frames.length; i++) {
        const f = this.frames[i]
        if (!f.isBinary) continue
        const msg = parseFrame(f.data)
        if (pred(msg)) return { index: i, msg }
      }
      if (this.closed) throw new Error(`socket closed (${JSON.stringify(this.closed)})`)
      return false
    }, { timeout, interval: 10, message })
  }

  send (bytes) {
    this.ws.send(bytes, { binary: true })
  }

  close () { this.ws.close() }
  terminate () { this.ws.terminate() }
}

/**
 * Asks the server for the room's full state over a fresh raw socket (sync step 1 with an
 * empty state vector) and returns it applied to a new Y.Doc. Joins the room briefly.
 */
export async function fetchRoomState (server, room, timeout = DEFAULT_TIMEOUT_MS) {
  const rc = await RawClient.connect(server.roomUrl(room), { timeout })
  try {
    const empty = new Y.Doc()
    rc.send(encodeSyncStep1(empty))
    const { msg } = await rc.waitMessage((m) => m.type === MSG_SYNC && m.syncType === SYNC_STEP2, {
      timeout, message: `sync step 2 from the server for room ${room}`
    })
    const doc = new Y.Doc()
    Y.applyUpdate(doc, msg.payload)
    return doc
  } finally {
    rc.close()
  }
}
