// Process contract: one STDOUT line naming the port, and a graceful exit on SIGTERM even with
// clients connected.

import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LISTENING_RE, startServer } from '../lib/server.js'
import { ClientPool, addNode, uniqueRoom, waitFor, waitSynced } from '../lib/clients.js'

test('prints one listening line and exits 0 on SIGTERM with clients connected', { timeout: 60_000 }, async () => {
  const server = await startServer()
  const pool = new ClientPool(server)
  try {
    assert.match(server.stdout.trimEnd(), LISTENING_RE)
    assert.ok(server.port > 0 && server.port < 65536)

    const room = uniqueRoom('lifecycle')
    const a = pool.client(room, 'A')
    const b = pool.client(room, 'B')
    await Promise.all([waitSynced(a), waitSynced(b)])
    addNode(a.doc, 'n', {})
    await waitFor(() => b.doc.getMap('nodes').has('n'), { message: 'B to receive n' })

    server.child.kill('SIGTERM')
    // the default shutdown grace is 10 s; allow some slack on top
    const { code, signal } = await server.waitForExit(20_000)
    assert.equal(signal, null, `exited by itself, not killed by ${signal}`)
    assert.equal(code, 0, `exit code 0 after SIGTERM\n--- stderr ---\n${server.stderrTail()}`)
    await waitFor(() => !a.provider.wsconnected && !b.provider.wsconnected, {
      message: 'both providers to see their connections closed'
    })
    assert.equal(server.stdout.split('\n').filter((l) => l !== '').length, 1,
      `exactly one STDOUT line, got ${JSON.stringify(server.stdout)}`)
  } finally {
    pool.destroyAll()
    await server.stop()
  }
})
