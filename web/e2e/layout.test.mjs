// Layout: where palette clicks put nodes, images that do not grow nodes, the settings panel
// opened on purpose, and a minimap that shows the nodes in the light theme.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import * as Y from 'yjs'
import { addFromPalette, api, connectHandles, nodeById, nodePosition, pairOnWorkflow, placeNode, screenshot, stage, waitFor } from './harness.mjs'

const theStage = stage()
const pair = (title) => pairOnWorkflow(theStage, { owner: 'Alice', guest: 'Bob', title })

const boxes = (person) => person.page.locator('.react-flow__node').evaluateAll((els) => els.map((el) => el.getBoundingClientRect().toJSON()))
const overlap = (a, b) => a.x < b.x + b.width && a.x + a.width > b.x && a.y < b.y + b.height && a.y + a.height > b.y

describe('layout', () => {
  test('Tidy up lays the graph out along its wires, for both, and one Undo puts it back', async () => {
    const { alice, bob } = await pair('auto-layout')
    // A chain placed back to front and out of line.
    const blur = await placeNode(alice, 'blur', { x: 60, y: 60 })
    const image = await placeNode(alice, 'dev-image', { x: 420, y: 380 })
    const prompt = await placeNode(alice, 'text-prompt', { x: 760, y: 120 })
    await connectHandles(alice, prompt, 'text', image, 'prompt')
    await connectHandles(alice, image, 'image', blur, 'image')
    await waitFor(async () => (await alice.page.locator('.react-flow__edge').count()) === 2, 'both wires')
    const ids = [prompt, image, blur]
    const before = await Promise.all(ids.map((id) => nodePosition(alice, id)))
    await alice.page.getByTestId('auto-layout').click()
    const after = await waitFor(async () => {
      const at = await Promise.all(ids.map((id) => nodePosition(alice, id)))
      return at[0].x < at[1].x && at[1].x < at[2].x ? at : null
    }, 'the chain laid out left to right: prompt, image, blur')
    await waitFor(async () => (await boxes(alice)).every((box) => box.width > 0), 'every node measured')
    const placed = await boxes(alice)
    for (const [i, a] of placed.entries()) {
      for (const b of placed.slice(i + 1)) assert.ok(!overlap(a, b), `nodes overlap: ${JSON.stringify([a, b])}`)
    }
    // B sees the same positions.
    await waitFor(
      async () => JSON.stringify(await Promise.all(ids.map((id) => nodePosition(bob, id)))) === JSON.stringify(after),
      'B to see the laid-out positions',
    )
    await screenshot(alice, 'layout-tidy-up')
    // One Undo takes the whole layout back.
    await alice.page.getByRole('button', { name: 'Undo' }).click()
    await waitFor(
      async () => JSON.stringify(await Promise.all(ids.map((id) => nodePosition(bob, id)))) === JSON.stringify(before),
      'B to see the positions from before the layout',
    )
  })

  test('palette clicks place nodes in free space, none over another, all in view', async () => {
    const { alice } = await pair('placement')
    for (const type of ['text-prompt', 'dev-image', 'blur', 'text-prompt', 'blur']) await addFromPalette(alice, type)
    await waitFor(async () => (await boxes(alice)).every((box) => box.width > 0), 'every node measured')
    const placed = await boxes(alice)
    for (const [i, a] of placed.entries()) {
      for (const b of placed.slice(i + 1)) assert.ok(!overlap(a, b), `nodes overlap: ${JSON.stringify([a, b])}`)
    }
    const pane = await alice.page.locator('.react-flow__pane').boundingBox()
    for (const box of placed) {
      assert.ok(box.x >= pane.x && box.x + box.width <= pane.x + pane.width, 'the node is within the visible canvas')
    }
    await screenshot(alice, 'layout-placement')
  })

  test('the settings panel opens on double-click or the Settings button, not on selection', async () => {
    const { alice } = await pair('settings-on-purpose')
    const id = await addFromPalette(alice, 'dev-image')
    const panel = alice.page.getByTestId('param-panel')
    await nodeById(alice, id).locator('header').click()
    await waitFor(async () => (await nodeById(alice, id).getAttribute('class'))?.includes('selected'), 'the node selected')
    assert.equal(await panel.count(), 0, 'selecting a node does not open its settings')
    await nodeById(alice, id).locator('header').dblclick()
    await panel.waitFor({ timeout: 5000 })
    await alice.page.locator('.react-flow__pane').click({ position: { x: 10, y: 10 } })
    await panel.waitFor({ state: 'detached', timeout: 5000 })
    await nodeById(alice, id).locator('header').click()
    await alice.page.getByTestId('settings-toggle').click()
    await panel.waitFor({ timeout: 5000 })
  })

  test('an image output does not make its node grow', async () => {
    const { alice } = await pair('image-frame')
    const id = await addFromPalette(alice, 'dev-image')
    const heightOf = async () => (await nodeById(alice, id).boundingBox()).height
    const before = await heightOf()
    const room = (await api(theStage.server, alice.token, 'GET', '/api/workflows')).find((w) => w.title === 'image-frame').room
    await writeResult(alice.token, room, id, {
      status: 'succeeded',
      progress: 100,
      outputs: { image: { kind: 'asset', asset: { id: 'asset_missing', contentType: 'image/png' }, url: '/assets/asset_missing' } },
      error: null,
      runId: 'r1',
      updatedAt: Date.now(),
    })
    await waitFor(async () => (await nodeById(alice, id).getByTestId('canvas-node').getAttribute('data-status')) === 'succeeded', 'the result on the node')
    await nodeById(alice, id).getByTestId('output-image').waitFor({ timeout: 5000 })
    assert.ok(Math.abs((await heightOf()) - before) < 1, `the node kept its height (${before} px, now ${await heightOf()} px)`)
  })

  test('the light-theme minimap draws every node in a colour of its own', async () => {
    const { alice } = await pair('minimap')
    if ((await alice.page.evaluate(() => document.documentElement.dataset.theme)) !== 'light') {
      await alice.page.getByTestId('theme-toggle').click()
    }
    await addFromPalette(alice, 'text-prompt')
    await addFromPalette(alice, 'dev-image')
    const minimapNodes = alice.page.locator('.react-flow__minimap-node')
    await waitFor(async () => (await minimapNodes.count()) === 2, 'two nodes in the minimap')
    const { fill, background } = await minimapNodes.first().evaluate((rect) => ({
      fill: getComputedStyle(rect).fill,
      background: getComputedStyle(rect.closest('.react-flow__minimap')).backgroundColor,
    }))
    assert.notEqual(fill, background, 'minimap nodes stand out from the minimap')
    assert.notEqual(fill, 'rgb(226, 226, 226)', "not React Flow's near-white default")
    await screenshot(alice, 'layout-minimap-light')
  })
})

/** Writes one node's result into the room's document over the HTTP API, as the executor would. */
async function writeResult(token, room, nodeId, fields) {
  const headers = { Authorization: `Bearer ${token}` }
  const url = theStage.server.url
  const state = new Uint8Array(await (await fetch(`${url}/api/rooms/${room}/state`, { headers })).arrayBuffer())
  const doc = new Y.Doc()
  Y.applyUpdate(doc, state)
  const before = Y.encodeStateVector(doc)
  doc.getMap('results').set(nodeId, new Y.Map(Object.entries(fields)))
  const response = await fetch(`${url}/api/rooms/${room}/update`, {
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/octet-stream' },
    body: Y.encodeStateAsUpdate(doc, before),
  })
  assert.equal(response.status, 200, await response.text())
}
