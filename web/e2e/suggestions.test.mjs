// The workflow agent's suggestions on the canvas (docs/agents.md): Owen's canvas has a prompt
// wired to nothing and has run; staff enqueue a review; on his next visit the canvas says the
// agent has a suggestion, shows it on demand, and Dismiss hides it for good (also after a
// reload). Cora, who may edit but does not manage the workflow, sees nothing.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { addFromPalette, adminCommand, api, createWorkflow, openWorkflow, screenshot, signIn, stage, waitFor } from './harness.mjs'

const theStage = stage({ env: { DOJO_AGENT_POLL_MS: '100', DOJO_AGENTS: 'workflow' } })

describe('suggestions', () => {
  test("the workflow agent's suggestion shows on its owner's canvas until dismissed", async () => {
    const { browser, server, people } = theStage
    const owen = await signIn(browser, server, 'Owen')
    const sid = await signIn(browser, server, 'Sid')
    const cora = await signIn(browser, server, 'Cora')
    people.push(owen, sid, cora)
    adminCommand(server, ['grant-staff', '--user', sid.me.id, '--role', 'staff'])

    const id = await createWorkflow(owen, 'Lonely prompt canvas')
    await addFromPalette(owen, 'text-prompt')
    const workflow = await api(server, owen.token, 'GET', `/api/workflows/${id}`)
    const room = workflow.room
    await api(server, owen.token, 'PUT', `/api/workflows/${id}/collaborators/${cora.me.id}`, { permission: 'write' })
    const run = await waitFor(async () => {
      try {
        return await api(server, owen.token, 'POST', `/api/rooms/${encodeURIComponent(room)}/runs`, {})
      } catch {
        return undefined // the server has not seen the node yet
      }
    }, 'a run of the canvas is accepted')
    await waitFor(
      async () => (await api(server, owen.token, 'GET', `/api/runs/${run.runId}`)).status === 'succeeded',
      'the run succeeds',
    )

    const job = await api(server, sid.token, 'POST', '/api/agent-jobs', { type: 'workflow.review', payload: {} })
    await waitFor(
      async () => (await api(server, sid.token, 'GET', `/api/agent-jobs/${job.id}`)).status === 'succeeded',
      'the workflow agent reviews',
    )

    await openWorkflow(owen, server, id)
    const banner = owen.page.getByTestId('suggestions')
    await banner.waitFor({ timeout: 15_000 })
    assert.match((await banner.textContent()) ?? '', /1 suggestion for this/)
    await banner.getByTestId('suggestions-toggle').click()
    const item = banner.locator('li[data-kind="unused"]')
    assert.match((await item.textContent()) ?? '', /is not wired to anything/)
    await screenshot(owen, 'workflow-suggestions')

    // Cora edits the canvas but does not manage it: no suggestions for her.
    await openWorkflow(cora, server, id)
    assert.equal(await cora.page.getByTestId('suggestions').count(), 0)

    await banner.getByTestId('suggestions-dismiss').click()
    await waitFor(async () => (await owen.page.getByTestId('suggestions').count()) === 0, 'dismissed')
    await owen.page.reload()
    await waitFor(async () => (await owen.page.getByTestId('connection').getAttribute('data-state')) === 'online', 'live again')
    assert.equal(await owen.page.getByTestId('suggestions').count(), 0, 'still dismissed after a reload')
    assert.equal((await api(server, owen.token, 'GET', `/api/workflows/${id}/suggestions`)).dismissed, true)
  })
})
