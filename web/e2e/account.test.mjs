// A person's data rights from the dashboard, with no step through the API (docs/data-rights.md):
// D exports everything about her and finds her canvas in the archive; opts out of analytics and
// the choice survives a reload; then deletes her account in two steps, and her old token and
// workflow are gone. A team's owner keeps its provider keys on the team page: stored, shown
// masked (never the key), replaced and removed; a member sees no such screen.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, test } from 'node:test'
import { addFromPalette, api, createWorkflow, screenshot, signIn, stage, waitFor } from './harness.mjs'

// A fixed test key-encryption key (32 bytes, base64): the server refuses to store provider keys
// without one.
const KEK = `e2e:${Buffer.alloc(32, 7).toString('base64')}`
const theStage = stage({ env: { DOJO_KEY_ENCRYPTION_KEYS: KEK } })

/** The status of an API call as a user (the harness's `api` throws on refusals). */
async function statusOf(server, token, method, route) {
  const response = await fetch(server.url + route, { method, headers: { Authorization: `Bearer ${token}` } })
  return response.status
}

describe('account data', () => {
  test('export, analytics opt-out and two-step deletion from the dashboard', async () => {
    const { browser, server, people } = theStage
    const dana = await signIn(browser, server, 'Dana', 'dana@example.com')
    people.push(dana)
    const workflowId = await createWorkflow(dana, 'Dana canvas')
    await addFromPalette(dana, 'blur')
    const { room } = await api(server, dana.token, 'GET', `/api/workflows/${workflowId}`)
    const nodeCount = (graph) => Object.keys(graph?.nodes ?? {}).length
    await waitFor(
      async () => nodeCount(await api(server, dana.token, 'GET', `/api/rooms/${room}/graph`)) === 1,
      'the node is stored',
    )
    await dana.page.goto(server.url)
    const section = dana.page.getByTestId('account-data')
    await section.waitFor({ timeout: 15_000 })

    // Export: the browser downloads an archive holding her profile and her canvas.
    const [download] = await Promise.all([
      dana.page.waitForEvent('download', { timeout: 15_000 }),
      section.getByRole('button', { name: 'Export my data' }).click(),
    ])
    const dir = mkdtempSync(path.join(tmpdir(), 'dojo-export-'))
    try {
      const archive = path.join(dir, 'export.tar.gz')
      await download.saveAs(archive)
      execFileSync('tar', ['-xzf', archive, '-C', dir])
      const profile = JSON.parse(readFileSync(path.join(dir, 'profile.json'), 'utf8'))
      assert.equal(profile.id, dana.me.id)
      assert.equal(profile.email, 'dana@example.com')
      const workflows = JSON.parse(readFileSync(path.join(dir, 'workflows.json'), 'utf8'))
      const listed = JSON.stringify(workflows)
      assert.ok(listed.includes(workflowId) && listed.includes('Dana canvas'), `the workflow is listed: ${listed}`)
      const document = JSON.parse(readFileSync(path.join(dir, 'workflows', workflowId, 'document.json'), 'utf8'))
      assert.equal(nodeCount(document), 1, 'the canvas is in the archive')
      assert.equal(Object.values(document.nodes)[0].type, 'blur')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }

    // Opt-out: ticked, stored on the server, still ticked after a reload.
    const optOut = section.getByLabel('Opt out of optional analytics')
    await waitFor(async () => !(await optOut.isDisabled()), 'the privacy setting is loaded')
    assert.equal(await optOut.isChecked(), false)
    await optOut.click()
    await waitFor(
      async () => (await api(server, dana.token, 'GET', '/api/me/privacy')).analyticsOptOut === true,
      'the opt-out is stored',
    )
    await dana.page.reload()
    await waitFor(async () => (await section.getByLabel('Opt out of optional analytics').isChecked()) === true, 'still opted out')
    // Tips after a while away: on by default; unticking stores the opt-out, the analytics one stays.
    const tips = section.getByLabel('Send me tips when I have been away')
    await waitFor(async () => !(await tips.isDisabled()) && (await tips.isChecked()), 'tips are on by default')
    await tips.click()
    await waitFor(async () => {
      const privacy = await api(server, dana.token, 'GET', '/api/me/privacy')
      return privacy.tipsOptOut === true && privacy.analyticsOptOut === true
    }, 'the tips opt-out is stored beside the analytics one')

    // Deletion: the first step says what goes; cancelling changes nothing; confirming deletes.
    await section.getByRole('button', { name: 'Delete my account' }).click()
    const confirm = dana.page.getByTestId('delete-confirm')
    await confirm.waitFor({ timeout: 15_000 })
    assert.match((await confirm.textContent()) ?? '', /1 workflow\(s\)/)
    await confirm.getByRole('button', { name: 'Cancel' }).click()
    assert.equal(await statusOf(server, dana.token, 'GET', `/api/workflows/${workflowId}`), 200, 'cancel keeps everything')

    await section.getByRole('button', { name: 'Delete my account' }).click()
    await screenshot(dana, 'account-delete-confirm')
    await confirm.getByRole('button', { name: 'Delete everything' }).click()
    await dana.page.getByRole('button', { name: 'Continue as dev user' }).waitFor({ timeout: 15_000 })
    const stranger = await signIn(browser, server, 'Eve')
    people.push(stranger)
    // Her workflow is gone for everyone; her old dev token names an account that no longer
    // exists, so it sees nothing of hers.
    assert.equal(await statusOf(server, stranger.token, 'GET', `/api/workflows/${workflowId}`), 404)
    assert.notEqual(await statusOf(server, dana.token, 'GET', `/api/workflows/${workflowId}`), 200)
  })
})

describe('team provider keys', () => {
  test('an owner stores, replaces and removes a key and only ever sees its last four characters', async () => {
    const { browser, server, people } = theStage
    const owner = await signIn(browser, server, 'Olga')
    const member = await signIn(browser, server, 'Mo')
    people.push(owner, member)
    const team = await api(server, owner.token, 'POST', '/api/teams', { name: 'Keys' })
    const invitation = await api(server, owner.token, 'POST', `/api/teams/${team.id}/invitations`, {
      userId: member.me.id,
      role: 'member',
    })
    await api(server, member.token, 'POST', `/api/invitations/${invitation.id}/accept`)

    await owner.page.goto(`${server.url}/teams/${team.id}`)
    const keys = owner.page.getByTestId('provider-keys')
    await keys.waitFor({ timeout: 15_000 })
    const openai = keys.locator('[data-testid="provider-key"][data-provider="openai"]')
    assert.equal(await openai.getByTestId('provider-key-mask').textContent(), 'server key')

    const secret = 'sk-e2e-secret-value-1234'
    const field = openai.getByLabel('OpenAI API key')
    assert.equal(await field.getAttribute('type'), 'password', 'the key is typed into a password field')
    await field.fill(secret)
    await openai.getByRole('button', { name: 'Save' }).click()
    await waitFor(async () => (await openai.getByTestId('provider-key-mask').textContent()) === '••••1234', 'the mask')
    assert.equal(await field.inputValue(), '', 'the field is emptied once the server took the key')
    const stored = await api(server, owner.token, 'GET', `/api/teams/${team.id}/provider-keys`)
    assert.deepEqual(
      stored.keys.map((k) => [k.provider, k.lastFour]),
      [['openai', '1234']],
    )
    await owner.page.reload()
    await waitFor(async () => (await openai.getByTestId('provider-key-mask').textContent()) === '••••1234', 'masked after reload')
    assert.ok(!(await owner.page.content()).includes(secret), 'the key is nowhere in the page')
    await screenshot(owner, 'team-provider-keys')

    // Replaced, then removed: runs fall back to the server's key.
    await field.fill('sk-e2e-second-key-9876')
    await openai.getByRole('button', { name: 'Save' }).click()
    await waitFor(async () => (await openai.getByTestId('provider-key-mask').textContent()) === '••••9876', 'replaced')
    await openai.getByRole('button', { name: 'Remove the OpenAI key' }).click()
    await waitFor(async () => (await openai.getByTestId('provider-key-mask').textContent()) === 'server key', 'removed')
    assert.deepEqual((await api(server, owner.token, 'GET', `/api/teams/${team.id}/provider-keys`)).keys, [])

    // A refused key says why, and nothing is stored.
    await field.fill('has space inside')
    await openai.getByRole('button', { name: 'Save' }).click()
    await keys.getByTestId('provider-key-error').waitFor({ timeout: 15_000 })
    assert.deepEqual((await api(server, owner.token, 'GET', `/api/teams/${team.id}/provider-keys`)).keys, [])

    // A member has no provider-keys screen, and the API refuses them the list.
    await member.page.goto(`${server.url}/teams/${team.id}`)
    await member.page.getByTestId('team-page').waitFor({ timeout: 15_000 })
    assert.equal(await member.page.getByTestId('provider-keys').count(), 0)
    assert.equal(await statusOf(server, member.token, 'GET', `/api/teams/${team.id}/provider-keys`), 403)
  })
})
