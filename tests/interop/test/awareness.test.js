// Awareness (presence) between stock y-websocket providers, relayed by the server.
//
// A stock Awareness only drops a silent peer after 30 s (outdatedTimeout). Removal within a few
// seconds therefore proves that the removal was sent: by the leaving client itself on a clean
// `destroy()`, and by the server when the connection just dies.

import assert from 'node:assert/strict'
import { useServer } from '../lib/harness.js'
import { clientState, waitFor, waitSynced } from '../lib/clients.js'

const h = useServer()

// well below the 30 s awareness timeout of the stock client
const REMOVAL_TIMEOUT_MS = 8_000

const aliceState = { user: { name: 'alice', color: '#ff0000' }, cursor: { x: 120.5, y: -40 } }

async function waitSeesState (observer, subject, expected, message) {
  await waitFor(() => {
    const s = observer.provider.awareness.getStates().get(subject.doc.clientID)
    return s !== undefined && JSON.stringify(s) === JSON.stringify(expected)
  }, {
    message,
    describe: () => `${clientState(observer)}\n  states seen by ${observer.name}: ` +
      JSON.stringify([...observer.provider.awareness.getStates().entries()])
  })
}

async function waitStateGone (observer, subject, message) {
  const started = Date.now()
  await waitFor(() => !observer.provider.awareness.getStates().has(subject.doc.clientID), {
    timeout: REMOVAL_TIMEOUT_MS,
    message,
    describe: () => `states seen by ${observer.name}: ` +
      JSON.stringify([...observer.provider.awareness.getStates().entries()])
  })
  return Date.now() - started
}

h.test('awareness state is relayed and removed when the peer destroys its provider', async ({ pool, room }) => {
  const a = pool.client(room, 'A')
  const b = pool.client(room, 'B')
  await Promise.all([waitSynced(a), waitSynced(b)])

  a.provider.awareness.setLocalState(aliceState)
  b.provider.awareness.setLocalStateField('user', { name: 'bob' })
  await waitSeesState(b, a, aliceState, 'B to see A\'s awareness state')
  await waitSeesState(a, b, { user: { name: 'bob' } }, 'A to see B\'s awareness state')

  // updates to the state are relayed too
  a.provider.awareness.setLocalStateField('cursor', { x: 1, y: 2 })
  await waitSeesState(b, a, { ...aliceState, cursor: { x: 1, y: 2 } }, 'B to see A\'s moved cursor')

  const removed = []
  b.provider.awareness.on('change', ({ removed: r }) => removed.push(...r))
  a.destroy()
  await waitStateGone(b, a, 'B to drop A\'s awareness state after A.destroy()')
  assert.ok(removed.includes(a.doc.clientID), 'B emitted an awareness change with A removed')
  // B's own state is untouched
  assert.deepEqual(b.provider.awareness.getLocalState(), { user: { name: 'bob' } })
})

h.test('a late joiner receives the awareness states of clients already in the room', async ({ pool, room }) => {
  const a = pool.client(room, 'A')
  await waitSynced(a)
  a.provider.awareness.setLocalState(aliceState)
  // give the server time to receive A's awareness update before B arrives
  const b = pool.client(room, 'B')
  await waitSynced(b)
  await waitSeesState(b, a, aliceState, 'late joiner B to see A\'s awareness state')
})

h.test('the server removes the awareness state of a connection that dies without saying goodbye', async ({ pool, room }) => {
  const a = pool.client(room, 'A')
  const b = pool.client(room, 'B')
  await Promise.all([waitSynced(a), waitSynced(b)])
  a.provider.awareness.setLocalState(aliceState)
  await waitSeesState(b, a, aliceState, 'B to see A\'s awareness state')

  // Kill A's TCP connection without a close frame and without the awareness "null state"
  // that provider.disconnect() sends; stop the provider from reconnecting.
  a.provider.shouldConnect = false
  a.provider.ws.terminate()
  await waitFor(() => !a.provider.wsconnected, { message: 'A to notice its socket is gone' })

  const ms = await waitStateGone(b, a,
    'B to drop A\'s awareness state after A\'s connection died (the server must broadcast the removal)')
  assert.ok(ms < REMOVAL_TIMEOUT_MS)
  assert.ok(b.provider.wsconnected, 'B stays connected')
})

h.test('the server removes awareness of a closed connection even if the client sent no null state', async ({ pool, room }) => {
  // Same as above, but with a clean WebSocket close handshake (code 1000) instead of a dead TCP
  // connection: the provider's own "null state" message is suppressed by closing the socket
  // underneath it.
  const a = pool.client(room, 'A')
  const b = pool.client(room, 'B')
  await Promise.all([waitSynced(a), waitSynced(b)])
  a.provider.awareness.setLocalState(aliceState)
  await waitSeesState(b, a, aliceState, 'B to see A\'s awareness state')

  a.provider.shouldConnect = false
  a.provider.ws.close(1000, 'bye')
  await waitFor(() => !a.provider.wsconnected, { message: 'A to notice its socket closed' })
  await waitStateGone(b, a, 'B to drop A\'s awareness state after A closed its socket cleanly')
})
