// Takes docs/editor.png, the README's picture: two people on one canvas, a graph built through
// the HTTP API's graph edits, run to the end. Not a test; run it after changing the editor's look:
//   cargo build -p dojo-server && (cd web && npm run build && node scripts/screenshot.mjs)
import path from 'node:path'
import { api, createWorkflow, launchBrowser, openWorkflow, signIn, startServer, waitFor, webDir } from '../e2e/harness.mjs'

const server = await startServer()
const browser = await launchBrowser()
try {
  const ada = await signIn(browser, server, 'Ada')
  const id = await createWorkflow(ada, 'Lighthouse study')
  const { room } = await api(server, ada.token, 'GET', `/api/workflows/${encodeURIComponent(id)}`)
  const grace = await signIn(browser, server, 'Grace')
  await api(server, ada.token, 'PUT', `/api/workflows/${encodeURIComponent(id)}/collaborators/${encodeURIComponent(grace.me.id)}`, { permission: 'write' })
  await api(server, ada.token, 'POST', `/api/rooms/${encodeURIComponent(room)}/edits`, {
    ops: [
      { op: 'addNode', id: 'prompt', type: 'text-prompt', position: { x: 0, y: 80 }, params: { text: 'a lighthouse at dusk, long exposure' } },
      { op: 'addNode', id: 'picture', type: 'dev-image', position: { x: 380, y: 0 }, params: { seed: 7 } },
      { op: 'addNode', id: 'soft', type: 'blur', position: { x: 760, y: 0 }, params: { sigma: 3 } },
      { op: 'addNode', id: 'mono', type: 'grayscale', position: { x: 760, y: 330 } },
      { op: 'connect', source: 'prompt', target: 'picture', targetHandle: 'prompt' },
      { op: 'connect', source: 'picture', target: 'soft' },
      { op: 'connect', source: 'picture', target: 'mono' },
    ],
  })
  const { runId } = await api(server, ada.token, 'POST', `/api/rooms/${encodeURIComponent(room)}/runs`)
  await waitFor(async () => (await api(server, ada.token, 'GET', `/api/runs/${runId}`)).status === 'succeeded', 'the run to succeed', 60_000)
  await openWorkflow(grace, server, id)
  await openWorkflow(ada, server, id)
  await grace.page.mouse.move(900, 520)
  await ada.page.waitForTimeout(1500)
  const file = path.join(webDir, '..', 'docs', 'editor.png')
  await ada.page.screenshot({ path: file })
  console.log(`wrote ${file}`)
} finally {
  await browser.close()
  await server.stop()
}
