// Dev mode as a fresh clone runs it (`DOJO_DEV_OPEN_WORKFLOWS` at its default): two people in
// two browsers co-edit one canvas by its URL, with no sharing step; the owner still alone may
// share, rename or delete it.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { addFromPalette, createWorkflow, nodeIds, signIn, stage, waitFor, waitForLive } from './harness.mjs'

const theStage = stage({ env: { DOJO_DEV_OPEN_WORKFLOWS: 'true' } })

describe('dev mode', () => {
  test("two dev identities co-edit one canvas by its URL, and only its owner shares it", async () => {
    const { browser, server, people } = theStage
    const alice = await signIn(browser, server, 'Alice')
    const bob = await signIn(browser, server, 'Bob')
    people.push(alice, bob)
    const id = await createWorkflow(alice, 'open in dev mode')

    await bob.page.goto(`${server.url}/w/${encodeURIComponent(id)}`)
    await waitForLive(bob)
    assert.equal(await bob.page.getByTestId('read-only-banner').count(), 0, 'B edits')
    const fromAlice = await addFromPalette(alice, 'blur')
    await waitFor(async () => (await nodeIds(bob)).includes(fromAlice), "B to see A's node")
    const fromBob = await addFromPalette(bob, 'invert')
    await waitFor(async () => (await nodeIds(alice)).includes(fromBob), "A to see B's node")

    // B is not the owner: the Share dialog offers B nothing to change.
    await bob.page.getByTestId('share').click()
    const dialog = bob.page.getByTestId('share-dialog')
    await dialog.waitFor({ timeout: 5000 })
    assert.equal(await dialog.getByLabel('Email or user id to invite').count(), 0, 'no invite box for B')
    assert.match((await dialog.textContent()) ?? '', /Only the owner can change who has access/)
  })
})
