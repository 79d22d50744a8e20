// docs/api.md's tour, run as written: every ```sh block between its `tour:start` and
// `tour:end` markers, in order, in one bash with `set -euo pipefail`, against a fresh server in
// dev mode, with a local HTTP receiver as the webhook endpoint. The tour is what a newcomer
// copies; this keeps it true (issue #21's "done when": create a workflow, build a graph in
// JSON, run it, get a signed webhook, and mistakes in the one error shape).

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHmac, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import path from 'node:path'
import { useServer } from '../lib/harness.js'
import { interopDir } from '../lib/server.js'
import { waitFor } from '../lib/clients.js'

// Private addresses are refused as webhook targets unless allowed: the receiver is on 127.0.0.1.
const h = useServer({ env: { DOJO_WEBHOOK_ALLOW_PRIVATE: 'true' } })

/** The tour's shell blocks, in order. */
function tourScript () {
  const doc = readFileSync(path.join(interopDir, '..', '..', 'docs', 'api.md'), 'utf8')
  const start = doc.indexOf('<!-- tour:start -->')
  const end = doc.indexOf('<!-- tour:end -->')
  assert.ok(start >= 0 && end > start, 'docs/api.md has the tour markers')
  const blocks = [...doc.slice(start, end).matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1])
  assert.ok(blocks.length >= 6, `the tour has its steps (found ${blocks.length} blocks)`)
  return blocks.join('\n')
}

/** A webhook receiver that keeps what it is sent. */
async function receiver () {
  const received = []
  const server = createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') })
      res.writeHead(204)
      res.end()
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { received, server, url: `http://127.0.0.1:${server.address().port}/dojo-hook` }
}

function run (script, env) {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-c', `set -euo pipefail\n${script}`], { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c) => { stdout += c })
    child.stderr.on('data', (c) => { stderr += c })
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

/** Stripe's scheme, as docs/webhooks.md tells a receiver to check it. */
function signatureValid (header, body, secret) {
  const parts = Object.fromEntries(String(header).split(',').map((kv) => kv.split('=')))
  const expected = createHmac('sha256', secret).update(`${parts.t}.${body}`).digest('hex')
  return parts.v1?.length === expected.length && timingSafeEqual(Buffer.from(parts.v1), Buffer.from(expected))
}

h.test('the HTTP API tour in docs/api.md runs as written', async ({ server }) => {
  const hook = await receiver()
  try {
    const result = await run(tourScript(), { DOJO: `http://${server.host}:${server.port}`, RECEIVER: hook.url })
    const output = `--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`
    assert.equal(result.code, 0, `the tour failed\n${output}`)

    assert.match(result.stdout, /"createdNodes": \[\s*"prompt",\s*"picture",\s*"soft"\s*\]/, output)
    assert.match(result.stdout, /"status": "succeeded"/, output)
    assert.match(result.stdout, /"blurred": "\/assets\/[^"]+"/, output)
    assert.match(result.stdout, /"run\.finished"/, `the change feed lists the run\n${output}`)
    assert.match(result.stdout, /"code":"invalid_edits"/, output)
    assert.match(result.stdout, /"code":"invalid_json"/, output)

    const secret = result.stdout.match(/"secret": "(whsec_[^"]+)"/)?.[1]
    assert.ok(secret, `the webhook's secret is shown once\n${output}`)
    const finished = await waitFor(
      () => hook.received.find((r) => r.headers['dojo-event-type'] === 'run.finished'),
      { timeout: 20_000, message: 'run.finished to reach the receiver', describe: () => JSON.stringify(hook.received.map((r) => r.headers['dojo-event-type'])) })
    assert.ok(signatureValid(finished.headers['dojo-signature'], finished.body, secret), 'the signature verifies')
    const event = JSON.parse(finished.body)
    assert.equal(event.type, 'run.finished')
    assert.equal(event.data.status, 'succeeded')
    assert.ok(hook.received.some((r) => r.headers['dojo-event-type'] === 'node.finished'), 'node.finished too')
  } finally {
    hook.server.close()
  }
})
