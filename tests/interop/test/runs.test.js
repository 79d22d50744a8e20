// A run watched by stock clients: a y-websocket provider builds prompt → dev image → blur →
// upscale in the shared document, the graph is submitted over HTTP, and another stock provider
// in the room sees every node go queued → running → succeeded (through its Y.Map observers,
// the way an editor would), ends with asset URLs that download as valid PNGs, and the user's
// credits drop by exactly the run's cost.

import assert from 'node:assert/strict'
import { after } from 'node:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as Y from 'yjs'
import { useServer } from '../lib/harness.js'
import { addNode, waitFor, waitSynced } from '../lib/clients.js'

const assets = mkdtempSync(join(tmpdir(), 'dojo-interop-assets-'))
after(() => rmSync(assets, { recursive: true, force: true }))
// Dev mode (no JWT key): a dev identity with welcome credits, the in-process queue.
const h = useServer({ args: ['--assets-dir', assets] })

const STORY = ['prompt', 'gen', 'soft', 'big']
const FINAL = new Set(['succeeded', 'failed', 'cancelled', 'cached', 'skipped'])

function http (server) {
  const base = `http://${server.host}:${server.port}`
  return async (method, path, { token, body, headers = {} } = {}) => {
    const response = await fetch(base + path, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body ? { 'content-type': 'application/json' } : {}),
        ...headers
      },
      body: body ? JSON.stringify(body) : undefined
    })
    const bytes = Buffer.from(await response.arrayBuffer())
    let json = null
    try { json = JSON.parse(bytes.toString('utf8')) } catch {}
    return { status: response.status, headers: response.headers, json, bytes }
  }
}

function addEdge (doc, source, sourceHandle, target, targetHandle) {
  const edge = new Y.Map()
  const id = `${source}-${target}`
  for (const [k, v] of Object.entries({ id, source, sourceHandle, target, targetHandle })) edge.set(k, v)
  doc.getMap('edges').set(id, edge)
}

/** Width and height from a PNG's IHDR chunk, after checking the signature. */
function pngSize (bytes) {
  assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG signature')
  assert.equal(bytes.subarray(12, 16).toString('latin1'), 'IHDR')
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)]
}

h.test('a stock client watches every node of a run go queued → running → succeeded, and gets PNGs', async ({ pool, server, room }) => {
  const call = http(server)
  const dev = await call('POST', '/api/dev/token', { body: { name: 'Ada' } })
  assert.equal(dev.status, 200, JSON.stringify(dev.json))
  const token = dev.json.token
  const before = (await call('GET', '/api/me', { token })).json.credits
  assert.ok(before >= 1, `dev credits: ${before}`)
  const created = await call('POST', '/api/workflows', { token, body: { title: 'Interop run', room } })
  assert.ok(created.status < 300, JSON.stringify(created.json))

  const editor = pool.client(room, 'editor', { params: { token } })
  const watcher = pool.client(room, 'watcher', { params: { token } })
  await Promise.all([waitSynced(editor), waitSynced(watcher)])
  editor.doc.transact(() => {
    addNode(editor.doc, 'prompt', { type: 'text-prompt', params: { text: 'a red fox in the snow' } })
    addNode(editor.doc, 'gen', { type: 'dev-image', x: 280, params: { seed: 3, width: 64, height: 48 } })
    addNode(editor.doc, 'soft', { type: 'blur', x: 560, params: { sigma: 1.5 } })
    addNode(editor.doc, 'big', { type: 'resize', x: 840, params: { scale: 2 } })
    addEdge(editor.doc, 'prompt', 'text', 'gen', 'prompt')
    addEdge(editor.doc, 'gen', 'image', 'soft', 'image')
    addEdge(editor.doc, 'soft', 'image', 'big', 'image')
  })
  await waitFor(() => watcher.doc.getMap('edges').size === 3, { message: 'the watcher to have the graph' })

  // Every status each node shows, per run, in the order the watcher's document changed
  // (recorded from before the submission, whose first states may arrive before its answer).
  const results = watcher.doc.getMap('results')
  const byRun = {}
  results.observeDeep(() => {
    for (const id of STORY) {
      const result = results.get(id)
      if (!(result instanceof Y.Map)) continue
      const history = ((byRun[result.get('runId')] ??= {})[id] ??= [])
      const status = result.get('status')
      if (history.at(-1) !== status) history.push(status)
    }
  })

  const accepted = await call('POST', `/api/rooms/${room}/runs`, { token, body: {}, headers: { 'Idempotency-Key': `interop-${room}` } })
  assert.equal(accepted.status, 202, JSON.stringify(accepted.json))
  const runId = accepted.json.runId
  const seen = Object.fromEntries(STORY.map((id) => [id, []]))
  const track = () => Object.assign(seen, byRun[runId] ?? {})
  const cost = accepted.json.estimate
  assert.equal(cost, 1, 'only the dev generator costs a credit')

  await waitFor(() => { track(); return STORY.every((id) => FINAL.has(seen[id].at(-1))) }, {
    timeout: 30_000,
    message: 'every node to reach a final state',
    describe: () => JSON.stringify(seen)
  })
  for (const id of STORY) {
    const states = seen[id]
    assert.equal(states.at(-1), 'succeeded', `${id}: ${states}`)
    // Whatever the watcher saw of the earlier states, it saw them in order, never backwards.
    const order = states.map((s) => ['queued', 'running', 'succeeded'].indexOf(s))
    assert.ok(order.every((rank, i) => rank >= 0 && (i === 0 || rank > order[i - 1])), `${id}: ${states}`)
  }
  // The last node was queued and running before it succeeded (it waits on three others).
  assert.deepEqual(seen.big, ['queued', 'running', 'succeeded'])

  // The run's summary is in the document too.
  await waitFor(() => watcher.doc.getMap('runs').get(runId)?.status === 'succeeded', {
    message: 'the run summary in the runs map',
    describe: () => JSON.stringify(watcher.doc.getMap('runs').toJSON())
  })
  assert.equal(watcher.doc.getMap('runs').get(runId).charged, cost)

  // Outputs are asset URLs that download as PNGs of the right size.
  const sizes = {}
  for (const id of ['gen', 'soft', 'big']) {
    const url = results.get(id).get('outputs')?.image?.url
    assert.match(url ?? '', /^\/assets\//, `${id} has an asset URL`)
    const asset = await call('GET', `${url}?token=${token}`)
    assert.equal(asset.status, 200, `${id}: GET ${url}`)
    assert.equal(asset.headers.get('content-type'), 'image/png')
    sizes[id] = pngSize(asset.bytes)
  }
  assert.deepEqual(sizes, { gen: [64, 48], soft: [64, 48], big: [128, 96] })

  const after = (await call('GET', '/api/me', { token })).json.credits
  assert.equal(after, before - cost, 'credits dropped by exactly the cost')
})
