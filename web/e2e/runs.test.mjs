// Runs and the compose dock, against the server's runs API
// (POST /api/rooms/{room}/runs, live state in the document's `results` and `runs` maps) and
// POST /api/rooms/{room}/compose. A server without those routes must get a clear message
// instead; which case applies is read from the server's OpenAPI description.
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { describe, test } from 'node:test'
import {
  addFromPalette,
  api,
  connectHandles,
  documentedRoutes,
  nodeById,
  nodeIds,
  pairOnWorkflow,
  placeNode,
  screenshot,
  stage,
  waitFor,
} from './harness.mjs'

const RUNS_ROUTE = '/api/rooms/{room}/runs'
const COMPOSE_ROUTE = '/api/rooms/{room}/compose'

let routes
const theStage = stage({
  started: async ({ server }) => {
    routes = await documentedRoutes(server)
  },
})

const pair = (title) => pairOnWorkflow(theStage, { owner: 'Runner', guest: 'Watcher', title })

async function promptImageBlur(person) {
  const prompt = await placeNode(person, 'text-prompt', { x: 40, y: 120 })
  const image = await placeNode(person, 'dev-image', { x: 330, y: 120 })
  const blur = await placeNode(person, 'blur', { x: 620, y: 120 })
  await connectHandles(person, prompt, 'text', image, 'prompt')
  await connectHandles(person, image, 'image', blur, 'image')
  await waitFor(async () => (await person.page.locator('.react-flow__edge').count()) === 2, 'both wires')
  await nodeById(person, prompt).getByLabel('Prompt text').fill('a lighthouse at dusk')
  return { prompt, image, blur }
}

const status = (person, id) => nodeById(person, id).locator('[data-testid="canvas-node"]').getAttribute('data-status')
const imageLoaded = (person, id) =>
  nodeById(person, id)
    .locator('[data-testid="output-image"]')
    .evaluate((img) => img.complete && img.naturalWidth > 0)

describe('runs', () => {
  test('the palette marks nodes this server cannot run, and Run refuses one by name, holding nothing', async () => {
    const { alice } = await pair('unavailable')
    const palette = alice.page.locator('[data-testid="palette-item"]')
    const flux = alice.page.locator('[data-testid="palette-item"][data-node-type="flux-schnell"]')
    const blur = alice.page.locator('[data-testid="palette-item"][data-node-type="blur"]')
    await waitFor(async () => (await palette.count()) > 0, 'the palette')
    // No provider has a key on this test server: the model nodes are dimmed and explained,
    // the built-in ones are not.
    assert.equal(await flux.getAttribute('data-available'), 'false')
    assert.match((await flux.getAttribute('title')) ?? '', /Replicate key \(REPLICATE_API_TOKEN\)/)
    assert.equal(await flux.getByTestId('palette-unavailable').textContent(), 'not on this server')
    assert.equal(await blur.getAttribute('data-available'), 'true')
    assert.equal(await blur.getByTestId('palette-unavailable').count(), 0)
    assert.match((await alice.page.getByTestId('palette-unavailable-note').textContent()) ?? '', /cannot run on this server/)
    // Placed anyway, the node says it cannot run here; Run refuses it by name and holds nothing.
    const before = (await alice.page.getByTestId('credits').textContent()) ?? ''
    const prompt = await placeNode(alice, 'text-prompt', { x: 40, y: 120 })
    const model = await placeNode(alice, 'flux-schnell', { x: 330, y: 120 })
    await connectHandles(alice, prompt, 'text', model, 'prompt')
    await nodeById(alice, prompt).getByLabel('Prompt text').fill('a lighthouse')
    assert.match((await nodeById(alice, model).getByTestId('node-unavailable').textContent()) ?? '', /Cannot run on this server/)
    await alice.page.getByTestId('run').click()
    await waitFor(
      async () => /REPLICATE_API_TOKEN/.test((await nodeById(alice, model).getByTestId('validation-error').allTextContents()).join(' ')),
      'the refusal on the flux node, naming the missing key',
    )
    assert.equal(await nodeById(alice, prompt).getByTestId('validation-error').count(), 0, 'the prompt is fine')
    assert.equal((await alice.page.getByTestId('credits').textContent()) ?? '', before, 'no credit held')
    await screenshot(alice, 'unavailable-alice')
  })

  test('A runs prompt → dev image → blur; both see the states and the final image', async () => {
    assert.ok(routes.has(RUNS_ROUTE), `the server documents ${RUNS_ROUTE}`)
    const { alice, bob } = await pair('run-chain')
    const { image, blur } = await promptImageBlur(alice)
    await alice.page.getByTestId('run').click()
    for (const person of [alice, bob]) {
      await waitFor(
        async () => ['succeeded', 'cached'].includes(await status(person, blur)),
        `${person.name} to see the blur node finish`,
        60_000,
      )
      assert.ok(['succeeded', 'cached'].includes(await status(person, image)), 'the image node finished too')
      await waitFor(() => imageLoaded(person, blur), `${person.name} to load the blurred image`)
    }
    // The "Run queued" banner was about this run: it is gone once the run is over.
    await waitFor(async () => (await alice.page.getByTestId('notice').count()) === 0, 'the queued banner to go once the run finished')
    await waitFor(
      async () => /^\d+ × \d+ px/.test((await nodeById(alice, blur).getByTestId('output-image-size').textContent()) ?? ''),
      'the image size under the thumbnail',
    )
    await screenshot(alice, 'run-chain-alice')
    await screenshot(bob, 'run-chain-bob')
    await nodeById(bob, blur).locator('[data-testid="output-image"]').click()
    await waitFor(
      () => bob.page.getByTestId('lightbox').locator('img').evaluate((img) => img.complete && img.naturalWidth > 0),
      'the full-size image',
    )
    const lightbox = bob.page.getByTestId('lightbox')
    const natural = await lightbox.locator('img').evaluate((img) => `${img.naturalWidth} × ${img.naturalHeight} px`)
    await waitFor(async () => ((await lightbox.getByTestId('lightbox-size').textContent()) ?? '').startsWith(natural), 'the pixel size in the lightbox')
    const download = lightbox.getByTestId('lightbox-download')
    assert.match((await download.getAttribute('download')) ?? '', /^dojo-.+\.(png|jpg|webp)$/, 'the download has a file name')
    const saved = await fetch(new URL((await download.getAttribute('href')) ?? '', theStage.server.url))
    assert.equal(saved.status, 200, 'the download link serves the image')
    assert.match(saved.headers.get('content-type') ?? '', /^image\//)
    await bob.page.keyboard.press('Escape')
    await alice.page.getByRole('button', { name: 'Runs', exact: true }).click()
    await waitFor(
      () => alice.page.locator('[data-testid="run-row"][data-status="succeeded"]').count(),
      'the run in the history panel',
    )
  })
})

describe('run from here and batches', () => {
  test('Run from here reuses the image upstream; a seed sweep fills the image node’s gallery for both', async () => {
    const { alice, bob, id } = await pair('run-from-here')
    const { image, blur } = await promptImageBlur(alice)
    await alice.page.getByTestId('run').click()
    await waitFor(async () => ['succeeded', 'cached'].includes(await status(alice, blur)), 'the first run to finish', 60_000)
    const { room } = await api(theStage.server, alice.token, 'GET', `/api/workflows/${id}`)
    const runsOfRoom = async () => (await api(theStage.server, alice.token, 'GET', `/api/rooms/${room}/runs`)).runs

    // Right-click the blur: Run from here plans the blur and what follows it, and the image
    // before it comes from the cache.
    const box = await nodeById(alice, blur).boundingBox()
    await alice.page.mouse.click(box.x + box.width / 2, box.y + 12, { button: 'right' })
    await alice.page.getByTestId('context-menu').getByRole('menuitem', { name: 'Run from here' }).click()
    await waitFor(async () => (await runsOfRoom()).length === 2, 'the second run')
    const [latest] = await runsOfRoom()
    assert.deepEqual(latest.targets, [blur])
    await waitFor(
      async () => (await api(theStage.server, alice.token, 'GET', `/api/runs/${latest.id}`)).status === 'succeeded',
      'run from here to finish',
      60_000,
    )
    const run = await api(theStage.server, alice.token, 'GET', `/api/runs/${latest.id}`)
    assert.equal(run.nodes[image].state, 'cached', 'the image upstream is not made again')
    assert.equal(run.charged, 0, 'nor paid again')

    // A sweep of three seeds: each new image lands in the image node's gallery, for both.
    const batch = await api(theStage.server, alice.token, 'POST', `/api/rooms/${room}/batches`, {
      sweeps: [{ node: image, param: 'seed', values: [11, 12, 13] }],
    })
    assert.equal(batch.size, 3)
    for (const person of [alice, bob]) {
      await waitFor(
        async () => (await nodeById(person, image).getByTestId('gallery-image').count()) === 3,
        `${person.name} to see three images in the gallery`,
        60_000,
      )
    }
    const titles = await nodeById(bob, image).locator('.gallery-thumb').evaluateAll((buttons) => buttons.map((b) => b.title))
    assert.ok(titles.some((title) => title.includes(`${image}.seed = 12`)), titles.join(' | '))
    await screenshot(alice, 'batch-gallery-alice')
  })
})

/**
 * Writes into the room's document over the HTTP API, as the server's executor does: reads the
 * state, changes a replica, posts the difference.
 */
async function writeAsExecutor(token, room, change) {
  const headers = { Authorization: `Bearer ${token}` }
  const state = new Uint8Array(await (await fetch(`${theStage.server.url}/api/rooms/${room}/state`, { headers })).arrayBuffer())
  const doc = new Y.Doc()
  Y.applyUpdate(doc, state)
  const before = Y.encodeStateVector(doc)
  doc.transact(() => change(doc))
  const response = await fetch(`${theStage.server.url}/api/rooms/${room}/update`, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/octet-stream' },
    body: Y.encodeStateAsUpdate(doc, before),
  })
  assert.equal(response.status, 200, await response.text())
}

describe('run state in the document', () => {
  test('statuses, progress, errors and outputs the executor writes show on every canvas', async () => {
    const { alice, bob } = await pair('results')
    const room = (await api(theStage.server, alice.token, 'GET', '/api/workflows')).find((w) => w.title === 'results').room
    const { prompt, image, blur } = await promptImageBlur(alice)
    const catalog = await (await fetch(`${theStage.server.url}/api/catalog`)).json()
    const imageTitle = catalog.nodes.find((spec) => spec.id === 'dev-image').name
    await writeAsExecutor(alice.token, room, (doc) => {
      const results = doc.getMap('results')
      const entry = (fields) => new Y.Map(Object.entries(fields))
      // A preview left on a finished node is not shown; the running node's is (its last lines).
      const stale = { text: 'left behind', at: Date.now() }
      results.set(prompt, entry({ status: 'succeeded', progress: 100, outputs: { text: { kind: 'text', text: 'a lighthouse at dusk' } }, error: null, runId: 'r1', updatedAt: Date.now(), preview: stale }))
      const preview = { text: 'step 1\nstep 2\nstep 3\nstep 4', at: Date.now() }
      results.set(image, entry({ status: 'running', progress: 40, outputs: {}, error: null, runId: 'r1', updatedAt: Date.now(), preview }))
      results.set(blur, entry({ status: 'skipped', progress: 0, outputs: {}, error: `not run: ${image}, which it depends on, failed`, runId: 'r1', updatedAt: Date.now() }))
      doc.getMap('runs').set('r1', { id: 'r1', status: 'running', estimate: 0, charged: null, createdAt: Date.now(), finishedAt: null, userId: alice.me.id })
    })
    for (const person of [alice, bob]) {
      await waitFor(async () => (await status(person, image)) === 'running', `${person.name} to see the running node`)
      assert.equal(await nodeById(person, image).getByRole('progressbar').getAttribute('aria-valuenow'), '40')
      assert.equal(await nodeById(person, image).getByTestId('preview-text').textContent(), 'step 2\nstep 3\nstep 4')
      assert.equal(await nodeById(person, prompt).getByTestId('node-preview').count(), 0)
      assert.equal(await status(person, prompt), 'succeeded')
      assert.equal(await nodeById(person, prompt).getByTestId('output-text').textContent(), 'text: a lighthouse at dusk')
      assert.equal(await status(person, blur), 'skipped')
      // The executor names the node by id; people see its title.
      assert.equal(await nodeById(person, blur).getByTestId('node-error').textContent(), `not run: “${imageTitle}”, which it depends on, failed`)
    }
    // An active run in the document enables Cancel.
    assert.ok(await bob.page.getByTestId('cancel').isEnabled(), 'Cancel is offered while a run is active')
    await screenshot(bob, 'results-bob')
  })
})

describe('compose dock', () => {
  test('"prompt, flux image, then upscale" becomes a connected chain of runnable nodes both see', async () => {
    assert.ok(routes.has(COMPOSE_ROUTE), `the server documents ${COMPOSE_ROUTE}`)
    const { alice, bob } = await pair('compose')
    await alice.page.getByLabel('Describe the nodes to add').fill('prompt, flux image, then upscale')
    await alice.page.getByRole('button', { name: 'Build' }).click()
    await waitFor(async () => (await nodeIds(bob)).length >= 3, 'B to see the composed nodes')
    await waitFor(async () => (await bob.page.locator('.react-flow__edge').count()) >= 2, 'B to see the composed wires')
    // No language model and no provider key here: A's dock says the parser planned, and that
    // Flux (a Replicate model) cannot run on this server, so the dev image generator stands in.
    await waitFor(
      async () =>
        /^Added 3 nodes and 2 wires, planned by the built-in parser\. Used Dev image generator instead of Flux Pro 1\.1 Ultra: this server has no Replicate key \(REPLICATE_API_TOKEN\)/.test(
          (await alice.page.getByTestId('compose-message').textContent()) ?? '',
        ),
      "A's dock to say what was added, that the parser planned it, and what stood in for Flux",
    )
    const types = await bob.page
      .locator('.react-flow__node')
      .evaluateAll((els) => els.map((el) => el.querySelector('[data-testid="canvas-node"]')?.getAttribute('data-node-type')))
    assert.deepEqual([...types].sort(), ['dev-image', 'resize', 'text-prompt'], 'only nodes this server can run')
    // A's view moved to the new nodes, and neither the zoom controls nor the minimap covers them.
    const covers = ['.react-flow__controls', '.react-flow__minimap']
    await waitFor(async () => {
      const chrome = await Promise.all(covers.map((selector) => alice.page.locator(selector).boundingBox()))
      const pane = await alice.page.locator('.react-flow__pane').boundingBox()
      const placed = await alice.page.locator('.react-flow__node').evaluateAll((els) => els.map((el) => el.getBoundingClientRect().toJSON()))
      const inside = (b) => b.x >= pane.x && b.y >= pane.y && b.x + b.width <= pane.x + pane.width && b.y + b.height <= pane.y + pane.height
      const hit = (a, b) => a.x < b.x + b.width && a.x + a.width > b.x && a.y < b.y + b.height && a.y + a.height > b.y
      return placed.length >= 3 && placed.every((box) => inside(box) && chrome.every((c) => !c || !hit(box, c)))
    }, "the composed nodes in A's view, clear of the controls and the minimap")
    await screenshot(alice, 'compose-alice')
    await screenshot(bob, 'compose-bob')
    // Compose is one step of A's own undo: Undo removes exactly the composed nodes, for both.
    await alice.page.getByRole('button', { name: 'Undo' }).click()
    await waitFor(async () => (await nodeIds(bob)).length === 0, "B to see A's undo remove the composed nodes")
  })
})
