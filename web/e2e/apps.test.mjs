// App mode (docs/apps.md): the owner publishes a canvas as a form from the editor; another user
// opens /app/{id}, runs it with their own credits and sees the output image, on a page with no
// canvas and nothing of the graph.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { api, connectHandles, createWorkflow, nodeById, placeNode, screenshot, signIn, stage, waitFor } from './harness.mjs'

const theStage = stage()

describe('app mode', () => {
  test('the owner publishes a form; another user runs it on their credits and sees the image, with no canvas', async () => {
    const { browser, server, people } = theStage
    const alice = await signIn(browser, server, `Publisher ${people.length}`)
    const bob = await signIn(browser, server, `Runner ${people.length}`)
    people.push(alice, bob)

    await createWorkflow(alice, 'fox maker')
    const prompt = await placeNode(alice, 'text-prompt', { x: 40, y: 120 })
    const image = await placeNode(alice, 'dev-image', { x: 330, y: 120 })
    await connectHandles(alice, prompt, 'text', image, 'prompt')
    await waitFor(async () => (await alice.page.locator('.react-flow__edge').count()) === 1, 'the wire')
    await nodeById(alice, prompt).getByLabel('Prompt text').fill('a fox in the snow')

    // Publish: the prompt's text as the input, the image as the output.
    await alice.page.getByTestId('publish-app-open').click()
    const dialog = alice.page.getByTestId('publish-app-dialog')
    await dialog.waitFor({ timeout: 5000 })
    await dialog.getByTestId(`app-input-${prompt}-text`).check()
    await dialog.getByTestId(`app-output-${image}-image`).check()
    await dialog.getByLabel('Label of Text prompt text').fill('Describe the animal')
    await dialog.getByTestId('publish-app').click()
    const link = dialog.getByTestId('app-link')
    await link.waitFor({ timeout: 15_000 })
    const href = await link.getAttribute('href')
    assert.match(href ?? '', /^\/app\/app_[0-9a-f]+$/, 'the form has its own address')
    await screenshot(alice, 'publish-app-dialog')

    const before = (await api(server, bob.token, 'GET', '/api/me')).credits
    const ownerBefore = (await api(server, alice.token, 'GET', '/api/me')).credits

    // The runner opens the form: no canvas, no node of the graph.
    await bob.page.goto(server.url + href)
    await bob.page.getByTestId('app-page').waitFor({ timeout: 15_000 })
    assert.equal(await bob.page.locator('.react-flow').count(), 0, 'no canvas on the form page')
    const html = await bob.page.content()
    assert.ok(!html.includes(image) && !html.includes(prompt), 'no node id on the page')
    const field = bob.page.getByTestId('app-field-in1')
    assert.equal(await bob.page.getByLabel('Describe the animal').count(), 1, 'the input has the label its owner gave it')
    assert.equal(await field.inputValue(), 'a fox in the snow', 'the published value is the default')
    await field.fill('a cat on a wall')
    await bob.page.getByTestId('app-run').click()

    const status = bob.page.getByTestId('app-run-status')
    await waitFor(async () => (await status.getAttribute('data-status')) === 'succeeded', 'the run to succeed', 30_000)
    const output = bob.page.getByTestId('app-output-image')
    await waitFor(() => output.evaluate((img) => img.complete && img.naturalWidth > 0), 'the output image to load')
    await screenshot(bob, 'app-form-ran')

    // The runner paid, the owner did not.
    assert.equal((await api(server, bob.token, 'GET', '/api/me')).credits, before - 1, 'the runner paid one credit')
    assert.equal((await api(server, alice.token, 'GET', '/api/me')).credits, ownerBefore, 'the owner paid nothing')
  })
})
