// Asking for help from the canvas (docs/agents.md): P, on her canvas, opens Help and sends a
// ticket with the canvas attached. The support agent drafts an answer (the template: no model
// here); staff (made staff with `dojo-server admin grant-staff`) read the draft and answer with
// an edit; P sees the answer in the Help dialog, and never the draft.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { adminCommand, api, createWorkflow, screenshot, signIn, stage, waitFor } from './harness.mjs'

const theStage = stage({ env: { DOJO_AGENT_POLL_MS: '100' } })

describe('support', () => {
  test('a ticket from the canvas is answered by staff, and only the answer is shown', async () => {
    const { browser, server, people } = theStage
    const pat = await signIn(browser, server, 'Pat')
    const sid = await signIn(browser, server, 'Sid')
    people.push(pat, sid)
    assert.match(adminCommand(server, ['grant-staff', '--user', sid.me.id, '--role', 'staff']), /none → staff/)

    await createWorkflow(pat, 'Help me canvas')
    await pat.page.getByTestId('ask-for-help').click()
    const dialog = pat.page.getByTestId('support-dialog')
    await dialog.waitFor({ timeout: 15_000 })
    await dialog.getByLabel('Subject').fill('Nothing renders')
    await dialog.getByLabel('Describe the problem').fill('I press Run and nothing appears.')
    await dialog.getByRole('button', { name: 'Send' }).click()
    await dialog.getByTestId('support-sent').waitFor({ timeout: 15_000 })
    const ticket = dialog.getByTestId('support-ticket')
    await waitFor(async () => (await ticket.count()) === 1, 'the ticket is listed')
    assert.match((await ticket.textContent()) ?? '', /Nothing renders.*waiting for our team/)

    // Staff see the agent's draft in the queue and answer with an edit.
    const drafted = await waitFor(async () => {
      const queue = await api(server, sid.token, 'GET', '/api/support/queue?status=drafted')
      return queue.tickets.find((t) => t.subject === 'Nothing renders')
    }, 'the support agent drafts')
    assert.equal(drafted.draftSource, 'fallback')
    assert.match(drafted.draft, /Nothing renders/)
    assert.ok(drafted.room, 'the canvas is attached')
    const answer = 'Your canvas has no nodes yet: drag a model from the palette, then press Run.'
    await api(server, sid.token, 'POST', `/api/support/tickets/${drafted.id}/answer`, { answer })

    // Pat sees the answer, never the draft.
    await dialog.getByRole('button', { name: 'Close help' }).click()
    await pat.page.getByTestId('ask-for-help').click()
    await waitFor(async () => (await dialog.getByTestId('support-answer').textContent()) === answer, 'the answer is shown')
    assert.equal(await dialog.getByTestId('support-ticket').getAttribute('data-status'), 'answered')
    assert.ok(!(await pat.page.content()).includes(drafted.draft.slice(0, 40)), 'the draft is nowhere in her page')
    await screenshot(pat, 'support-answered')
  })
})
