// Sharing from the editor, with no step through the API: A invites B in the share dialog, B
// finds the workflow under "Shared with you" and both edit one canvas; A removes B again.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { addFromPalette, createWorkflow, nodeIds, screenshot, signIn, stage, waitFor, waitForLive } from './harness.mjs'

const theStage = stage()

async function twoPeople() {
  const { browser, server, people } = theStage
  const alice = await signIn(browser, server, `Alice ${people.length}`)
  const bob = await signIn(browser, server, `Bob ${people.length}`)
  people.push(alice, bob)
  return { alice, bob }
}

const collaboratorIds = (person) =>
  person.page.getByTestId('collaborator').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-user-id')))

describe('sharing', () => {
  test('A shares with B in the dialog; B opens it from "Shared with you" and both co-edit; A removes B', async () => {
    const { server } = theStage
    const { alice, bob } = await twoPeople()
    const id = await createWorkflow(alice, 'shared canvas')

    // Before sharing, B cannot open the canvas.
    await bob.page.goto(`${server.url}/w/${encodeURIComponent(id)}`)
    await bob.page.getByTestId('canvas-problem').waitFor({ timeout: 15_000 })

    await alice.page.getByTestId('share').click()
    const dialog = alice.page.getByTestId('share-dialog')
    await dialog.waitFor({ timeout: 5000 })
    assert.equal(await dialog.getByTestId('share-url').inputValue(), `${server.url}/w/${encodeURIComponent(id)}`, 'the link is the canvas URL')
    await dialog.getByLabel('Email or user id to invite').fill(bob.me.id)
    await dialog.getByLabel('Role', { exact: true }).selectOption('write')
    await dialog.getByRole('button', { name: 'Invite' }).click()
    await waitFor(async () => (await collaboratorIds(alice)).join() === bob.me.id, 'B in the collaborator list')
    assert.equal(await dialog.getByLabel(`Role of ${bob.me.id}`).inputValue(), 'write', 'B is an editor')
    await screenshot(alice, 'share-dialog')
    await alice.page.keyboard.press('Escape')

    // B finds it on the dashboard, with its owner.
    await bob.page.goto(server.url)
    const shared = bob.page.getByTestId('shared-with-me')
    await shared.waitFor({ timeout: 15_000 })
    assert.equal(await shared.getByTestId('workflow-owner').textContent(), alice.me.id, 'the owner is shown')
    await screenshot(bob, 'dashboard-shared-with-me')
    await shared.getByRole('link', { name: 'shared canvas' }).click()
    await waitForLive(bob)

    const fromAlice = await addFromPalette(alice, 'text-prompt')
    await waitFor(async () => (await nodeIds(bob)).includes(fromAlice), "B to see A's node")
    const fromBob = await addFromPalette(bob, 'dev-image')
    await waitFor(async () => (await nodeIds(alice)).includes(fromBob), "A to see B's node")

    // A removes B; B can no longer open the canvas.
    await alice.page.getByTestId('share').click()
    await dialog.getByRole('button', { name: `Remove ${bob.me.id}` }).click()
    await waitFor(async () => (await collaboratorIds(alice)).length === 0, 'the collaborator list to be empty')
    await bob.page.goto(`${server.url}/w/${encodeURIComponent(id)}`)
    await bob.page.getByTestId('canvas-problem').waitFor({ timeout: 15_000 })
  })

  test('A shares by email: with B\'s account at once, and with C\'s address before C ever signed in', async () => {
    const { browser, server, people } = theStage
    const n = people.length
    const alice = await signIn(browser, server, `Alice ${n}`)
    const bob = await signIn(browser, server, `Bob ${n}`, `bob${n}@example.com`)
    people.push(alice, bob)
    const id = await createWorkflow(alice, 'shared by email')
    await alice.page.getByTestId('share').click()
    const dialog = alice.page.getByTestId('share-dialog')
    const invite = async (email, role) => {
      await dialog.getByLabel('Email or user id to invite').fill(email)
      await dialog.getByLabel('Role', { exact: true }).selectOption(role)
      await dialog.getByRole('button', { name: 'Invite' }).click()
    }

    // B has an account with that address: an editor at once.
    await invite(`BOB${n}@example.com`, 'write')
    await waitFor(async () => (await collaboratorIds(alice)).join() === bob.me.id, 'B in the collaborator list')
    assert.match((await dialog.getByTestId('share-notice').textContent()) ?? '', /Shared with .* as editor/)

    // Nobody has C's address yet: the invitation waits, listed with a way to withdraw it.
    await invite(`carol${n}@example.com`, 'read')
    const waiting = dialog.getByTestId('pending-invitation')
    await waitFor(async () => (await waiting.count()) === 1, 'the pending invitation listed')
    assert.equal(await waiting.getAttribute('data-email'), `carol${n}@example.com`)
    assert.match((await dialog.getByTestId('share-notice').textContent()) ?? '', /get access as viewer when they do/)
    await screenshot(alice, 'share-dialog-pending-invitation')
    // A second address, withdrawn: whoever signs in with it later gets nothing.
    await invite(`dave${n}@example.com`, 'write')
    await waitFor(async () => (await waiting.count()) === 2, 'two pending invitations')
    await dialog.getByRole('button', { name: `Withdraw the invitation of dave${n}@example.com` }).click()
    await waitFor(async () => (await waiting.count()) === 1, 'the withdrawn invitation gone')

    // C signs in with the address for the first time and finds the canvas, read-only.
    const carol = await signIn(browser, server, `Carol ${n}`, `carol${n}@example.com`)
    const dave = await signIn(browser, server, `Dave ${n}`, `dave${n}@example.com`)
    people.push(carol, dave)
    const shared = carol.page.getByTestId('shared-with-me')
    await shared.waitFor({ timeout: 15_000 })
    await shared.getByRole('link', { name: 'shared by email' }).click()
    await waitForLive(carol)
    await carol.page.getByTestId('read-only-banner').waitFor({ timeout: 15_000 })
    await dave.page.goto(`${server.url}/w/${encodeURIComponent(id)}`)
    await dave.page.getByTestId('canvas-problem').waitFor({ timeout: 15_000 })

    // A's dialog now lists C as a viewer and nothing pending.
    await alice.page.reload()
    await alice.page.getByTestId('share').click()
    await waitFor(async () => (await collaboratorIds(alice)).includes(carol.me.id), 'C among the collaborators')
    assert.equal(await dialog.getByLabel(`Role of ${carol.me.id}`).inputValue(), 'read', 'C is a viewer')
    assert.equal(await dialog.getByTestId('pending-invitation').count(), 0, 'nothing pending')
  })

  test('a public workflow opens read-only for anyone signed in with the link', async () => {
    const { server } = theStage
    const { alice, bob } = await twoPeople()
    const id = await createWorkflow(alice, 'public canvas')
    await alice.page.getByTestId('share').click()
    await alice.page.getByTestId('public-toggle').check()
    await waitFor(() => alice.page.getByTestId('public-toggle').isChecked(), 'the workflow to be public')
    await bob.page.goto(`${server.url}/w/${encodeURIComponent(id)}`)
    await waitForLive(bob)
    await bob.page.getByTestId('read-only-banner').waitFor({ timeout: 15_000 })
  })
})
