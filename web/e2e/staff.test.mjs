// The staff screen (/staff, docs/agents.md). Pat asks for help about her canvas; the support
// agent drafts an answer (the template: no model here); Sid, made staff with `dojo-server admin
// grant-staff`, opens the staff screen from the dashboard, edits the draft and sends it, and Pat
// reads exactly what he sent. A ticket someone else answered meanwhile shows the server's refusal.
// Fay's payments go wrong (Stripe's signed webhook: a refund, a failed charge, a dispute); a fraud
// scan flags her and her paid runs are refused; Sid reads the evidence and clears the flag with a
// note, and her run starts. Someone who is not staff reads "staff only" and has no link to it.
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { describe, test } from 'node:test'
import { adminCommand, api, screenshot, signIn, stage, waitFor } from './harness.mjs'

const STRIPE_SECRET = 'whsec_staff_e2e'

const theStage = stage({
  env: {
    // The in-process agents claim their jobs quickly.
    DOJO_AGENT_POLL_MS: '100',
    DOJO_STRIPE_WEBHOOK_SECRET: STRIPE_SECRET,
  },
})

/** Sid, staff: signed in before the grant, so his page is reloaded to learn it. */
let staff
async function staffMember() {
  if (staff) return staff
  const { browser, server, people } = theStage
  staff = await signIn(browser, server, 'Sid Staff')
  people.push(staff)
  assert.match(adminCommand(server, ['grant-staff', '--user', staff.me.id, '--role', 'staff']), /none → staff/)
  assert.equal((await api(server, staff.token, 'GET', '/api/me')).staffRole, 'staff')
  await staff.page.reload()
  await staff.page.getByTestId('staff-link').click()
  await staff.page.getByTestId('staff-page').waitFor({ timeout: 15_000 })
  return staff
}

/** Delivers a Stripe event signed as Stripe signs it (`t=…,v1=HMAC-SHA256("t.body")`). */
async function stripe(server, id, type, object) {
  const now = Math.floor(Date.now() / 1000)
  const body = JSON.stringify({ id, type, created: now, data: { object } })
  const signature = createHmac('sha256', STRIPE_SECRET).update(`${now}.${body}`).digest('hex')
  const response = await fetch(`${server.url}/api/webhooks/stripe`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Stripe-Signature': `t=${now},v1=${signature}` },
    body,
  })
  assert.equal(response.status, 200, `${type}: ${await response.text()}`)
}

/** Starts a run of the whole canvas; the status and the error code, if any. */
async function startRun(server, token, room) {
  const response = await fetch(`${server.url}/api/rooms/${encodeURIComponent(room)}/runs`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: '{}',
  })
  const body = await response.json().catch(() => null)
  return { status: response.status, code: body?.code ?? null }
}

describe('staff screen', () => {
  test('staff edit the support agent’s draft and send it; the asker reads what was sent', async () => {
    const { browser, server, people } = theStage
    const pat = await signIn(browser, server, 'Pat Asker')
    people.push(pat)
    const workflow = await api(server, pat.token, 'POST', '/api/workflows', { title: 'Pat’s broken canvas' })
    const ticket = await api(server, pat.token, 'POST', '/api/support/tickets', {
      subject: 'Nothing renders',
      body: 'I press Run and nothing appears.',
      room: workflow.room,
    })
    const other = await api(server, pat.token, 'POST', '/api/support/tickets', { subject: 'Billing question', body: 'Where is my invoice?' })

    const sid = await staffMember()
    const queue = sid.page.getByTestId('support-queue')
    const card = queue.locator(`[data-testid="staff-ticket"][data-ticket-id="${ticket.id}"]`)
    // The agent drafts in the background; the screen reads the queue again until the draft is there.
    await waitFor(async () => (await card.getAttribute('data-status')) === 'drafted', 'the support agent’s draft is shown')
    const drafted = await api(server, sid.token, 'GET', `/api/support/tickets/${ticket.id}`)
    assert.equal(drafted.draftSource, 'fallback', 'the template wrote it (no language model here)')
    const box = card.getByTestId('staff-ticket-draft')
    assert.equal(await box.inputValue(), drafted.draft.trim(), 'the draft is in the answer box')
    assert.match(await box.inputValue(), /Nothing renders/)
    assert.equal(await card.getByTestId('staff-ticket-body').textContent(), 'I press Run and nothing appears.')
    assert.equal(await card.getByTestId('staff-ticket-user').textContent(), pat.me.id)
    // Pat's canvas is not shared with Sid: its room is named, with no link.
    assert.match((await card.getByTestId('staff-ticket-room').textContent()) ?? '', new RegExp(`${workflow.room}.*not shared with you`))

    // Waiting tickets come oldest first.
    const order = await queue.getByTestId('staff-ticket').evaluateAll((els) => els.map((el) => el.getAttribute('data-ticket-id')))
    assert.deepEqual(order, [ticket.id, other.id])

    const answer = `${drafted.draft.trim()}\n\nAlso: your canvas has no nodes yet. Drag a model from the palette, then press Run.`
    await box.fill(answer)
    await card.getByRole('button', { name: 'Send answer' }).click()
    await waitFor(async () => (await card.count()) === 0, 'the answered ticket leaves the waiting list')
    assert.equal(await queue.getByTestId('support-notice').textContent(), 'Answered “Nothing renders”.')

    // Pat reads the answer as Sid sent it, and never the draft.
    const mine = await api(server, pat.token, 'GET', '/api/support/tickets')
    const seen = mine.tickets.find((t) => t.id === ticket.id)
    assert.equal(seen.status, 'answered')
    assert.equal(seen.answer, answer)
    assert.equal(seen.draft, undefined, 'the asker never sees the draft')

    // Another staff member answered the billing ticket meanwhile: sending shows the server's refusal.
    const otherCard = queue.locator(`[data-testid="staff-ticket"][data-ticket-id="${other.id}"]`)
    await waitFor(async () => (await otherCard.getAttribute('data-status')) === 'drafted', 'the second draft is shown')
    await api(server, sid.token, 'POST', `/api/support/tickets/${other.id}/answer`, { answer: 'Under Account, Invoices.' })
    await otherCard.getByRole('button', { name: 'Send answer' }).click()
    await waitFor(
      async () => (await otherCard.getByTestId('staff-ticket-error').textContent()) === 'the ticket is answered already',
      'the conflict is shown with the server’s message',
    )

    // The answered filter shows both, the latest answer first.
    await queue.getByLabel('Tickets to show').selectOption('answered')
    const answered = queue.getByTestId('staff-ticket')
    await waitFor(async () => (await answered.count()) === 2, 'both answered tickets are listed')
    assert.deepEqual(await answered.evaluateAll((els) => els.map((el) => el.getAttribute('data-ticket-id'))), [other.id, ticket.id])
    assert.equal(await answered.nth(1).getByTestId('staff-ticket-answer').textContent(), answer)
    await screenshot(sid, 'staff-support-answered')
  })

  test('a flagged account is read with its evidence and cleared; its paid runs start again', async () => {
    const { browser, server, people } = theStage
    const fay = await signIn(browser, server, 'Fay Flagged')
    people.push(fay)
    const sid = await staffMember()

    // A paid canvas of Fay's: one dev image (one credit).
    const workflow = await api(server, fay.token, 'POST', '/api/workflows', { title: 'Fay’s foxes' })
    await api(server, fay.token, 'POST', `/api/rooms/${encodeURIComponent(workflow.room)}/edits`, {
      ops: [{ op: 'addNode', id: 'img', type: 'dev-image', position: { x: 0, y: 0 }, params: { prompt: 'a fox', width: 16, height: 16 } }],
    })

    // Her payments go wrong three ways within a day.
    const mine = { user_id: fay.me.id }
    await stripe(server, 'evt_fay_refund', 'charge.refunded', { id: 'ch_fay', amount: 500, amount_refunded: 500, metadata: mine })
    await stripe(server, 'evt_fay_failed', 'charge.failed', { id: 'ch_fay2', amount: 500, metadata: mine })
    await stripe(server, 'evt_fay_dispute', 'charge.dispute.created', { id: 'dp_fay', charge: 'ch_fay', amount: 500, metadata: mine })

    // Staff ask for a scan now rather than wait for the schedule's.
    const job = await api(server, sid.token, 'POST', '/api/agent-jobs', { type: 'fraud.scan', payload: {} })
    await waitFor(async () => {
      const seen = await api(server, sid.token, 'GET', `/api/agent-jobs/${job.id}`)
      assert.notEqual(seen.status, 'failed', JSON.stringify(seen))
      return seen.status === 'succeeded'
    }, 'the fraud scan to run')
    const open = await api(server, sid.token, 'GET', `/api/fraud/flags?status=open&user=${fay.me.id}`)
    assert.deepEqual(open.flags.map((f) => f.rule), ['payment_trouble'])
    assert.deepEqual(await startRun(server, fay.token, workflow.room), { status: 403, code: 'account_under_review' })

    // Sid sees her account with the rule and its evidence.
    const section = sid.page.getByTestId('flagged-accounts')
    await section.getByRole('button', { name: 'Refresh' }).click()
    const account = section.locator(`[data-testid="flagged-account"][data-user-id="${fay.me.id}"]`)
    await account.waitFor({ timeout: 15_000 })
    assert.match((await account.textContent()) ?? '', /Payment trouble/)
    const flag = account.locator('[data-testid="fraud-flag"][data-rule="payment_trouble"]')
    assert.equal(
      await flag.getByTestId('fraud-evidence').textContent(),
      '1 refund, 1 failed charge, 1 dispute within 24 h (flagged at 3)',
    )
    // The scan is in the agents' queue, succeeded.
    const jobs = sid.page.getByTestId('agent-jobs')
    await jobs.getByRole('button', { name: 'Refresh' }).click()
    await waitFor(async () => (await jobs.locator('[data-testid="agent-job"][data-type="fraud.scan"][data-status="succeeded"]').count()) >= 1, 'the scan is listed')
    await screenshot(sid, 'staff-flag-open')

    await flag.getByLabel('Note on the payment trouble flag').fill('Card expired; spoke to Fay, all fine.')
    await flag.getByRole('button', { name: 'Clear' }).click()
    await waitFor(async () => (await account.count()) === 0, 'the cleared account leaves the open list')
    assert.match((await section.getByTestId('flag-notice').textContent()) ?? '', /Cleared the payment trouble flag of .*allowed again/)

    const cleared = await api(server, sid.token, 'GET', `/api/fraud/flags?user=${fay.me.id}`)
    assert.deepEqual(
      cleared.flags.map((f) => [f.status, f.note, f.reviewedBy]),
      [['cleared', 'Card expired; spoke to Fay, all fine.', sid.me.id]],
    )
    assert.equal((await startRun(server, fay.token, workflow.room)).status, 202, 'her paid run starts')

    // The cleared filter shows it, with the note and no verdict left to give.
    await section.getByLabel('Flags to show').selectOption('cleared')
    const reviewed = section.locator(`[data-testid="fraud-flag"][data-flag-id="${open.flags[0].id}"]`)
    await reviewed.waitFor({ timeout: 15_000 })
    assert.match((await reviewed.textContent()) ?? '', /Card expired; spoke to Fay/)
    assert.equal(await reviewed.getByRole('button').count(), 0)
  })

  test('someone who is not staff reads "staff only" and has no link to the screen', async () => {
    const { browser, server, people } = theStage
    const nina = await signIn(browser, server, 'Nina Nobody')
    people.push(nina)
    assert.equal(nina.me.staffRole, null)
    assert.equal(await nina.page.getByTestId('staff-link').count(), 0, 'no link on her dashboard')
    await nina.page.goto(`${server.url}/staff`)
    await nina.page.getByTestId('staff-only').waitFor({ timeout: 15_000 })
    assert.match((await nina.page.getByTestId('staff-only').textContent()) ?? '', /Staff only/)
    assert.equal(await nina.page.getByTestId('staff-page').count(), 0)
  })
})
