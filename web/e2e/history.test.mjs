// Version history: the server keeps a version each time it compacts a room's log (here after
// every 4 stored updates, DOJO_COMPACT_AFTER_UPDATES); A previews one read-only and restores
// it, both see the canvas go back, and A's Undo takes the restore back.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { addFromPalette, api, nodeIds, pairOnWorkflow, screenshot, stage, waitFor } from './harness.mjs'

const theStage = stage({ env: { DOJO_COMPACT_AFTER_UPDATES: '4' } })
const pair = (title) => pairOnWorkflow(theStage, { owner: 'Historian', guest: 'Witness', title })

describe('version history', () => {
  test('A previews a stored version read-only, restores it for both, and Undo takes the restore back', async () => {
    const { alice, bob, id } = await pair('versions')
    const { room } = await api(theStage.server, alice.token, 'GET', `/api/workflows/${id}`)
    // Four updates: four nodes, then the server compacts and keeps that canvas as a version.
    const first = []
    for (const type of ['blur', 'invert', 'grayscale', 'threshold']) first.push(await addFromPalette(alice, type))
    const versions = await waitFor(async () => {
      const list = await api(theStage.server, alice.token, 'GET', `/api/rooms/${encodeURIComponent(room)}/versions`)
      return list.length > 0 ? list : null
    }, 'the server to store a version')
    assert.equal(versions.length, 1)
    // Then the canvas changes: two nodes go, one comes (fewer updates than make a version).
    await alice.page.locator(`.react-flow__node[data-id="${first[0]}"] header`).click()
    await alice.page.keyboard.press('Delete')
    const added = await addFromPalette(alice, 'text-prompt')
    const changed = [...first.slice(1), added].sort()
    await waitFor(async () => JSON.stringify(await nodeIds(bob)) === JSON.stringify(changed), 'B to see the changed canvas')

    await alice.page.getByTestId('versions-toggle').click()
    const entry = alice.page.getByTestId('version')
    await waitFor(async () => (await entry.count()) === 1, 'the stored version listed')
    await entry.getByRole('button', { name: 'Preview' }).click()
    const preview = alice.page.getByTestId('version-preview')
    await waitFor(async () => (await preview.locator('.react-flow__node').count()) === 4, 'the preview to draw the version’s four nodes')
    const previewed = await preview
      .locator('.react-flow__node')
      .evaluateAll((els) => els.map((el) => el.getAttribute('data-id')).sort())
    assert.deepEqual(previewed, [...first].sort())
    // The preview is read-only: its nodes cannot be selected or dragged, and nothing changed.
    assert.equal(await preview.locator('.react-flow__node.draggable').count(), 0)
    assert.deepEqual(await nodeIds(bob), changed, 'previewing changes nothing')
    assert.equal(await alice.page.locator('.flow .react-flow__node').count(), changed.length, "A's own canvas unchanged")
    await screenshot(alice, 'version-preview')

    await preview.getByTestId('restore-version').click()
    for (const person of [alice, bob]) {
      await waitFor(
        async () => JSON.stringify(await nodeIds(person)) === JSON.stringify([...first].sort()),
        `${person.name} to see the restored version`,
      )
    }
    // The restore is one step of A's undo.
    await alice.page.getByRole('button', { name: 'Undo' }).click()
    for (const person of [alice, bob]) {
      await waitFor(async () => JSON.stringify(await nodeIds(person)) === JSON.stringify(changed), `${person.name} to see the restore undone`)
    }
  })
})
