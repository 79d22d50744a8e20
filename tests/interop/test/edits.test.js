// Graph edits in JSON seen by stock clients: an HTTP batch (`POST /api/rooms/{room}/edits`)
// appears in a y-websocket provider's document through its ordinary observers, an undo takes it
// away again, and an undo after the stock client changed a touched node is refused with 409.

import assert from 'node:assert/strict'
import { useServer } from '../lib/harness.js'
import { setParam, waitFor, waitSynced } from '../lib/clients.js'

// Dev mode (no JWT key): a dev identity owns the workflow.
const h = useServer()

function http (server) {
  const base = `http://${server.host}:${server.port}`
  return async (method, path, { token, body } = {}) => {
    const response = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined
    })
    return { status: response.status, json: await response.json() }
  }
}

h.test('a stock client sees an HTTP edit live, and its undo', async ({ pool, server, room }) => {
  const call = http(server)
  const { token } = (await call('POST', '/api/dev/token', { body: { name: 'Ada' } })).json
  const created = await call('POST', '/api/workflows', { token, body: { title: 'Interop edits', room } })
  assert.ok(created.status < 300, JSON.stringify(created.json))
  const watcher = pool.client(room, 'watcher', { params: { token } })
  await waitSynced(watcher)
  const seen = []
  watcher.doc.getMap('nodes').observe((event) => seen.push(...event.keysChanged))

  const edit = await call('POST', `/api/rooms/${room}/edits`, {
    token,
    body: {
      ops: [
        { op: 'addNode', id: 'prompt', type: 'text-prompt', position: { x: 0, y: 0 }, params: { text: 'a fox' } },
        { op: 'addNode', id: 'gen', type: 'dev-image', position: { x: 300, y: 0 } },
        { op: 'connect', source: 'prompt', sourceHandle: 'text', target: 'gen', targetHandle: 'prompt' }
      ]
    }
  })
  assert.equal(edit.status, 200, JSON.stringify(edit.json))
  assert.deepEqual(edit.json.createdNodes, ['prompt', 'gen'])
  await waitFor(() => watcher.doc.getMap('edges').size === 1, { message: 'the watcher to see the wire' })
  assert.deepEqual(seen.sort(), ['gen', 'prompt'], 'both nodes arrived through the observer')
  const gen = watcher.doc.getMap('nodes').get('gen')
  assert.equal(gen.get('data').get('width'), 512, 'with the catalog defaults, in a Y.Map')

  const undone = await call('POST', `/api/rooms/${room}/edits/${edit.json.editId}/undo`, { token })
  assert.equal(undone.status, 200, JSON.stringify(undone.json))
  await waitFor(() => watcher.doc.getMap('nodes').size === 0, { message: 'the undo to reach the watcher' })
  assert.equal(watcher.doc.getMap('edges').size, 0)

  // Redo (the undo's undo), then the stock client changes a touched node: undo is refused.
  const redone = await call('POST', `/api/rooms/${room}/edits/${undone.json.editId}/undo`, { token })
  assert.equal(redone.status, 200, JSON.stringify(redone.json))
  await waitFor(() => watcher.doc.getMap('nodes').size === 2, { message: 'the redo to reach the watcher' })
  setParam(watcher.doc, 'prompt', 'text', 'an owl')
  await waitFor(async () => {
    const graph = await call('GET', `/api/rooms/${room}/graph`, { token })
    return graph.json.nodes.prompt?.data?.text === 'an owl'
  }, { message: 'the server to hold the change' })
  const conflict = await call('POST', `/api/rooms/${room}/edits/${redone.json.editId}/undo`, { token })
  assert.equal(conflict.status, 409, JSON.stringify(conflict.json))
  assert.equal(conflict.json.code, 'edit_conflict')
  assert.equal(conflict.json.conflicts[0].id, 'prompt')
  assert.equal(watcher.doc.getMap('nodes').size, 2, 'nothing was undone')
})
