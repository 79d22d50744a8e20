// One dojo-server per test file; one ClientPool per test, torn down whatever happens.
//
//   const h = useServer()
//   h.test('two providers sync', async ({ pool, server, room }) => { ... })
//
// A failing test's error gets the tail of the server's stderr appended.

import { before, after, test } from 'node:test'
import { startServer } from './server.js'
import { ClientPool, uniqueRoom } from './clients.js'

export function useServer (opts = {}) {
  const h = { server: null }

  before(async () => {
    h.server = await startServer(opts)
  })

  after(async () => {
    if (!h.server) return
    const res = await h.server.stop()
    if (!res.graceful) {
      // A failed graceful stop is reported by the dedicated lifecycle test; here we only make
      // sure nothing is left running.
      process.stderr.write(`warning: dojo-server needed SIGKILL: ${res.error?.message}\n`)
    }
  })

  h.test = (name, fn, testOpts = {}) => test(name, { timeout: 120_000, ...testOpts }, async (t) => {
    if (!h.server) throw new Error('dojo-server did not start (see the before hook error)')
    const pool = new ClientPool(h.server)
    try {
      await fn({ t, pool, server: h.server, room: uniqueRoom(name) })
    } catch (err) {
      if (err && typeof err === 'object' && typeof err.message === 'string') {
        err.message += `\n--- dojo-server stderr (tail) ---\n${h.server.stderrTail(4000)}`
      }
      throw err
    } finally {
      pool.destroyAll()
    }
  })

  return h
}
