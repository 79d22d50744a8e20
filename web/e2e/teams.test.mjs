// Teams from the editor, with no step through the API: A creates a team, invites B by email and
// C by user id; both accept on their dashboards; A creates a workflow in the team; B (member)
// co-edits it, C (viewer) reads it; A makes B a viewer and B's open canvas turns read-only; A
// reads who did what in the team's audit log, renames the team and deletes it.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { addFromPalette, nodeIds, screenshot, signIn, stage, waitFor, waitForLive } from './harness.mjs'

const theStage = stage()

const memberIds = (person) =>
  person.page.getByTestId('team-member').evaluateAll((rows) => rows.map((row) => row.getAttribute('data-user-id')).sort())

async function acceptOnDashboard(person, server, teamName) {
  await person.page.goto(server.url)
  const invitation = person.page.getByTestId('my-invitation')
  await invitation.waitFor({ timeout: 15_000 })
  assert.match((await invitation.textContent()) ?? '', new RegExp(`Join ${teamName}`))
  await invitation.getByRole('button', { name: 'Accept' }).click()
  await person.page.getByTestId('team-row').waitFor({ timeout: 15_000 })
}

async function openTeamWorkflow(person, teamId, title) {
  await person.page.getByTestId('workspace').selectOption(teamId)
  const list = person.page.getByTestId('team-workflows')
  await list.getByRole('link', { name: title }).click()
  await waitForLive(person)
}

describe('teams', () => {
  test('a team of three shares a canvas by role, and its admin reads the audit log', async () => {
    const { browser, server, people } = theStage
    const alice = await signIn(browser, server, 'Alice', 'alice@example.com')
    const bob = await signIn(browser, server, 'Bob', 'bob@example.com')
    const carol = await signIn(browser, server, 'Carol')
    people.push(alice, bob, carol)

    // A creates the team: it becomes her workspace, and its page is one click away.
    await alice.page.getByLabel('New team name').fill('Studio')
    await alice.page.getByRole('button', { name: 'Create team' }).click()
    const row = alice.page.getByTestId('team-row')
    await row.waitFor({ timeout: 15_000 })
    const teamId = await row.getAttribute('data-team-id')
    assert.equal(await alice.page.getByTestId('workspace').inputValue(), teamId, 'the new team is the workspace')
    await row.getByRole('link', { name: 'Studio' }).click()
    await alice.page.getByTestId('team-page').waitFor({ timeout: 15_000 })
    assert.equal(await alice.page.getByTestId('my-team-role').textContent(), 'you are owner')

    // She invites B by email as a member and C by user id as a viewer.
    const invite = async (who, role) => {
      await alice.page.getByLabel('Email or user id to invite to the team').fill(who)
      await alice.page.getByLabel('Team role').selectOption(role)
      await alice.page.getByRole('button', { name: 'Invite' }).click()
    }
    await invite('bob@example.com', 'member')
    await waitFor(async () => (await alice.page.getByTestId('team-invitation').count()) === 1, 'the first invitation listed')
    await invite(carol.me.id, 'viewer')
    await waitFor(async () => (await alice.page.getByTestId('team-invitation').count()) === 2, 'two pending invitations')

    await acceptOnDashboard(bob, server, 'Studio')
    await acceptOnDashboard(carol, server, 'Studio')
    await alice.page.reload()
    await waitFor(
      async () => (await memberIds(alice)).join() === [alice.me.id, bob.me.id, carol.me.id].sort().join(),
      'three members',
    )
    assert.equal(await alice.page.getByTestId('team-invitation').count(), 0, 'nothing pending')

    // A creates a workflow in the team's workspace.
    await alice.page.getByRole('link', { name: '← Workflows' }).click()
    await alice.page.getByLabel('New workflow title').fill('team canvas')
    await alice.page.getByRole('button', { name: 'Create workflow' }).click()
    await alice.page.waitForURL(/\/w\//, { timeout: 15_000 })
    await waitForLive(alice)

    // B, a member, finds it in the team's workspace and co-edits; C, a viewer, reads it.
    await openTeamWorkflow(bob, teamId, 'team canvas')
    await openTeamWorkflow(carol, teamId, 'team canvas')
    await carol.page.getByTestId('read-only-banner').waitFor({ timeout: 15_000 })
    const fromAlice = await addFromPalette(alice, 'blur')
    await waitFor(async () => (await nodeIds(bob)).includes(fromAlice), "B to see A's node")
    await waitFor(async () => (await nodeIds(carol)).includes(fromAlice), "C to see A's node")
    const fromBob = await addFromPalette(bob, 'invert')
    await waitFor(async () => (await nodeIds(alice)).includes(fromBob), "A to see B's node")

    // A makes B a viewer on the team page: B's open canvas turns read-only.
    const teamPage = await alice.context.newPage()
    teamPage.on('pageerror', (error) => alice.problems.push(`${alice.name}: page error: ${error.message}`))
    await teamPage.goto(`${server.url}/teams/${encodeURIComponent(teamId)}`)
    await teamPage.getByLabel('Role of Bob').selectOption('viewer')
    await waitFor(
      async () => (await teamPage.getByLabel('Role of Bob').inputValue()) === 'viewer',
      "B's role to read viewer",
    )
    await bob.page.getByTestId('read-only-banner').waitFor({ timeout: 20_000 })

    // The audit log says who did what, and filters by action.
    const entries = teamPage.getByTestId('audit-entry')
    await teamPage.reload()
    await waitFor(async () => (await entries.count()) >= 6, 'the audit entries')
    const actions = await entries.evaluateAll((rows) => rows.map((row) => row.getAttribute('data-action')))
    for (const action of ['team.created', 'invitation.created', 'invitation.accepted', 'member.role_changed']) {
      assert.ok(actions.includes(action), `${action} in ${actions}`)
    }
    await teamPage.getByLabel('Filter by action').fill('member.role_changed')
    await teamPage.getByRole('button', { name: 'Filter' }).click()
    await waitFor(async () => (await entries.count()) === 1, 'one entry for the filter')
    assert.match((await entries.textContent()) ?? '', new RegExp(`changed ${bob.me.id}'s role from member to viewer`))
    await teamPage.getByLabel('Filter by action').fill('')
    await teamPage.getByRole('button', { name: 'Filter' }).click()
    await waitFor(async () => (await entries.count()) >= 6, 'all entries again')
    await teamPage.screenshot({ path: new URL('../test-output/team-page.png', import.meta.url).pathname, fullPage: true })
    await screenshot(alice, 'team-canvas-alice')

    // B, now a viewer, sees the team but neither invites nor reads the audit log.
    await bob.page.goto(`${server.url}/teams/${encodeURIComponent(teamId)}`)
    await bob.page.getByTestId('team-page').waitFor({ timeout: 15_000 })
    assert.equal(await bob.page.getByTestId('my-team-role').textContent(), 'you are viewer')
    assert.equal(await bob.page.getByTestId('audit-log').count(), 0, 'no audit log for a viewer')
    assert.equal(await bob.page.getByLabel('Email or user id to invite to the team').count(), 0, 'no invite form')

    // A renames the team, then deletes it: its canvas closes to C, and it leaves B's dashboard.
    teamPage.once('dialog', (dialog) => void dialog.accept('Studio Two'))
    await teamPage.getByRole('button', { name: 'Rename' }).click()
    await waitFor(async () => (await teamPage.getByTestId('team-name').textContent()) === 'Studio Two', 'the new name')
    teamPage.once('dialog', (dialog) => void dialog.accept())
    await teamPage.getByRole('button', { name: 'Delete team' }).click()
    await teamPage.waitForURL(`${server.url}/`, { timeout: 15_000 })
    await carol.page.getByTestId('access-denied').waitFor({ timeout: 20_000 })
    await bob.page.goto(server.url)
    await bob.page.getByTestId('teams-panel').waitFor({ timeout: 15_000 })
    assert.equal(await bob.page.getByTestId('team-row').count(), 0, 'the team is gone from B\'s dashboard')
    await teamPage.close()
  })

  test("a team's owner sees its balance and sets a member's monthly limit", async () => {
    const { browser, server, people } = theStage
    const dana = await signIn(browser, server, 'Dana', 'dana@example.com')
    people.push(dana)
    await dana.page.getByLabel('New team name').fill('Budget')
    await dana.page.getByRole('button', { name: 'Create team' }).click()
    const row = dana.page.getByTestId('team-row')
    await row.waitFor({ timeout: 15_000 })
    await row.getByRole('link', { name: 'Budget' }).click()
    await dana.page.getByTestId('team-credits').waitFor({ timeout: 15_000 })
    await waitFor(async () => (await dana.page.getByTestId('team-balance').textContent()) === '0', 'the balance shown')
    const mine = dana.page.locator(`[data-testid="member-spend"][data-user-id="${dana.me.id}"]`)
    assert.equal(await mine.getByTestId('member-spent').textContent(), '0 credits this month (no limit)')
    await mine.getByLabel('Monthly limit of Dana').fill('5')
    await mine.getByRole('button', { name: 'Set limit' }).click()
    await waitFor(
      async () => (await mine.getByTestId('member-spent').textContent()) === '0 of 5 credits this month',
      'the limit saved and shown',
    )
    await dana.page.reload()
    await waitFor(
      async () => (await mine.getByTestId('member-spent').textContent()) === '0 of 5 credits this month',
      'the limit is the server\'s',
    )
  })
})
