// Two people on one workflow, each in a browser context of their own, against a real
// dojo-server serving the built editor.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  addFromPalette,
  centreOf,
  connectHandles,
  drag,
  nodeById,
  nodeIds,
  nodePosition,
  pairOnWorkflow,
  screenshot,
  stage,
  waitFor,
} from './harness.mjs'

const theStage = stage()

/** Alice creates a workflow and shares it with Bob (write, unless said otherwise); both open it. */
const pairOn = (title, permission = 'write') => pairOnWorkflow(theStage, { owner: 'Alice', guest: 'Bob', title, permission })

const edgeCount = (person) => person.page.locator('.react-flow__edge').count()

describe('co-editing', () => {
  test('A adds, connects, moves and deletes nodes; B sees each change', async () => {
    const { alice, bob } = await pairOn('co-editing')
    const prompt = await addFromPalette(alice, 'text-prompt')
    const image = await addFromPalette(alice, 'dev-image')
    await waitFor(async () => (await nodeIds(bob)).join() === [prompt, image].sort().join(), 'B to see both new nodes')

    // Move the image node away so both handles are visible, then wire prompt → image.
    const header = nodeById(alice, image).locator('header')
    const start = await centreOf(header)
    await drag(alice.page, start, { x: start.x + 260, y: start.y + 120 })
    const moved = await nodePosition(alice, image)
    await waitFor(async () => {
      const seen = await nodePosition(bob, image)
      return seen && Math.abs(seen.x - moved.x) < 0.5 && Math.abs(seen.y - moved.y) < 0.5
    }, 'B to see the node where A dropped it')

    await connectHandles(alice, prompt, 'text', image, 'prompt')
    await waitFor(async () => (await edgeCount(bob)) === 1, 'B to see the new wire')

    // Typing into the prompt reaches B's copy of the node.
    await nodeById(alice, prompt).getByLabel('Prompt text').fill('a red fox')
    await waitFor(
      async () => (await nodeById(bob, prompt).getByLabel('Prompt text').inputValue()) === 'a red fox',
      "B to see A's prompt text",
    )
    await screenshot(alice, 'co-editing-alice')
    await screenshot(bob, 'co-editing-bob')

    await nodeById(alice, image).locator('header').click()
    await alice.page.keyboard.press('Delete')
    await waitFor(async () => (await nodeIds(bob)).join() === prompt, 'B to see the node deleted')
    assert.equal(await edgeCount(bob), 0, 'the wire went with the node')
  })

  test('connections the catalog forbids are refused', async () => {
    const { alice } = await pairOn('type-check')
    const prompt = await addFromPalette(alice, 'text-prompt')
    const blur = await addFromPalette(alice, 'blur')
    const header = nodeById(alice, blur).locator('header')
    const start = await centreOf(header)
    await drag(alice.page, start, { x: start.x + 300, y: start.y })
    await connectHandles(alice, prompt, 'text', blur, 'image')
    // Refused out loud: a short message says why, rather than the wire vanishing.
    await waitFor(
      async () => /Cannot connect: a text output cannot go into an image input/.test((await alice.page.getByTestId('toast').textContent()) ?? ''),
      'a message saying why the text → image wire was refused',
    )
    // The drag is over once mouse.up returned; give any (wrong) write a moment to show up by
    // waiting on something that must happen after it: a valid connection made next.
    const image = await addFromPalette(alice, 'dev-image')
    const imageHeader = await centreOf(nodeById(alice, image).locator('header'))
    await drag(alice.page, imageHeader, { x: imageHeader.x, y: imageHeader.y + 220 })
    await connectHandles(alice, prompt, 'text', image, 'prompt')
    await waitFor(async () => (await edgeCount(alice)) >= 1, 'the valid text → prompt wire')
    assert.equal(await edgeCount(alice), 1, 'only the text → prompt wire exists; text → image was refused')
  })
})

describe('co-typing', () => {
  test('two people typing into one prompt at once both keep their text', async () => {
    const { alice, bob } = await pairOn('co-typing')
    const prompt = await addFromPalette(alice, 'text-prompt')
    await waitFor(async () => (await nodeIds(bob)).includes(prompt), 'B to see the prompt')
    const mine = nodeById(alice, prompt).getByLabel('Prompt text')
    const theirs = nodeById(bob, prompt).getByLabel('Prompt text')
    await mine.fill('a lighthouse')
    await waitFor(async () => (await theirs.inputValue()) === 'a lighthouse', 'B to see the start of the prompt')
    // A types at the end, B at the start, keystroke for keystroke at the same time. (Control:
    // the end of the text, not of the wrapped line.)
    await mine.focus()
    await alice.page.keyboard.press('Control+End')
    await theirs.focus()
    await bob.page.keyboard.press('Control+Home')
    const aText = ' at dusk, oil painting'
    const bText = 'Wide shot: '
    await Promise.all([mine.pressSequentially(aText, { delay: 15 }), theirs.pressSequentially(bText, { delay: 15 })])
    const wanted = `${bText}a lighthouse${aText}`
    for (const [person, field] of [[alice, mine], [bob, theirs]]) {
      await waitFor(async () => (await field.inputValue()) === wanted, `${person.name} to see both people's text, whole`)
    }
    // Then both type at the same place (the end) at once: each keeps their own characters together.
    await alice.page.keyboard.press('Control+End')
    await bob.page.keyboard.press('Control+End')
    await Promise.all([mine.pressSequentially(' [A]', { delay: 15 }), theirs.pressSequentially(' {B}', { delay: 15 })])
    const both = await waitFor(async () => {
      const [a, b] = [await mine.inputValue(), await theirs.inputValue()]
      return a === b && a.length === wanted.length + 8 ? a : null
    }, 'both to see the same text with both endings')
    assert.ok(both.startsWith(wanted), both)
    assert.ok(both.includes(' [A]') && both.includes(' {B}'), `both endings kept whole: ${both}`)
    await screenshot(bob, 'co-typing-bob')
  })
})

describe('presence', () => {
  test("B sees A's avatar and cursor, and A's selection outlined in A's colour", async () => {
    const { alice, bob } = await pairOn('presence')
    await waitFor(
      () => bob.page.locator(`[data-testid="avatar"][data-name="${alice.name}"]`).count(),
      "A's avatar at B",
    )
    const node = await addFromPalette(alice, 'blur')
    const box = await alice.page.locator('.react-flow__pane').boundingBox()
    await alice.page.mouse.move(box.x + 120, box.y + 90)
    await alice.page.mouse.move(box.x + 140, box.y + 100)
    const cursor = bob.page.locator(`[data-testid="remote-cursor"][data-name="${alice.name}"]`)
    await waitFor(() => cursor.count(), "A's cursor at B")

    // A's node is selected after adding it: B outlines it and names A.
    await waitFor(
      async () => (await nodeById(bob, node).locator('[data-testid="canvas-node"]').getAttribute('data-selected-by')) === alice.name,
      "B to outline the node A selected",
    )
    const outline = await nodeById(bob, node).locator('[data-testid="canvas-node"]').evaluate((el) => el.style.boxShadow)
    assert.match(outline, /rgb\(/, 'the outline is drawn in a colour')
    await screenshot(bob, 'presence-bob')

    // A leaves: the avatar and cursor go away at B.
    await alice.page.goto(`${theStage.server.url}/`)
    await waitFor(
      async () => (await bob.page.locator(`[data-testid="avatar"][data-name="${alice.name}"]`).count()) === 0,
      "A's avatar to leave B's top bar",
    )
    assert.equal(await cursor.count(), 0)
  })
})

describe('context menu', () => {
  test('right-click anywhere on a node opens Duplicate / Delete / Settings', async () => {
    const { alice, bob } = await pairOn('context-menu')
    const prompt = await addFromPalette(alice, 'text-prompt')
    const node = nodeById(alice, prompt)
    const box = await node.boundingBox()
    const menu = alice.page.getByTestId('context-menu')
    // Corners, header, the handle row and the text area inside the node.
    const points = [
      { x: box.x + 3, y: box.y + 3 },
      { x: box.x + box.width - 3, y: box.y + box.height - 3 },
      { x: box.x + box.width / 2, y: box.y + 12 },
      { x: box.x + 20, y: box.y + 40 },
      await centreOf(node.getByLabel('Prompt text')),
    ]
    for (const point of points) {
      await alice.page.mouse.click(point.x, point.y, { button: 'right' })
      await menu.waitFor({ timeout: 5000 })
      await alice.page.keyboard.press('Escape')
      await menu.waitFor({ state: 'detached', timeout: 5000 })
    }

    await alice.page.mouse.click(points[2].x, points[2].y, { button: 'right' })
    await menu.getByRole('menuitem', { name: /Duplicate/ }).click()
    await waitFor(async () => (await nodeIds(bob)).length === 2, 'B to see the duplicate')

    await alice.page.mouse.click(points[2].x, points[2].y, { button: 'right' })
    await menu.getByRole('menuitem', { name: 'Settings' }).click()
    const panel = alice.page.getByTestId('param-panel')
    await panel.waitFor({ timeout: 5000 })
    await panel.locator('[data-param="text"] textarea').fill('from the settings panel')
    await waitFor(
      async () => (await nodeById(bob, prompt).getByLabel('Prompt text').inputValue()) === 'from the settings panel',
      'B to see the parameter set in the panel',
    )

    await alice.page.mouse.click(points[2].x, points[2].y, { button: 'right' })
    await menu.getByRole('menuitem', { name: /Delete/ }).click()
    await waitFor(async () => !(await nodeIds(bob)).includes(prompt), 'B to see the node deleted from the menu')
  })
})

describe('undo', () => {
  test("undo takes back one's own change only", async () => {
    const { alice, bob } = await pairOn('undo')
    const mine = await addFromPalette(alice, 'blur')
    const theirs = await addFromPalette(bob, 'invert')
    await waitFor(async () => (await nodeIds(alice)).length === 2, 'A to see both nodes')
    await alice.page.locator('.react-flow__pane').click({ position: { x: 30, y: 30 } })
    await alice.page.keyboard.press('Control+z')
    await waitFor(async () => (await nodeIds(bob)).join() === theirs, "B to see A's node undone and B's kept")
    assert.deepEqual(await nodeIds(alice), [theirs])
    await alice.page.keyboard.press('Control+Shift+z')
    await waitFor(async () => (await nodeIds(bob)).length === 2, "B to see A's node redone")
    assert.ok((await nodeIds(bob)).includes(mine))
  })
})

describe('offline', () => {
  test('edits made offline are kept and merged on reconnect, both ways', async () => {
    const { alice, bob } = await pairOn('offline')
    const shared = await addFromPalette(alice, 'blur')
    await waitFor(async () => (await nodeIds(bob)).includes(shared), 'B to see the first node')

    await alice.context.setOffline(true)
    await waitFor(
      async () => (await alice.page.getByTestId('connection').getAttribute('data-state')) === 'offline',
      'A to show the offline indicator',
    )
    const offlineNode = await addFromPalette(alice, 'invert')
    const bobNode = await addFromPalette(bob, 'grayscale')
    await screenshot(alice, 'offline-alice')
    assert.ok(!(await nodeIds(bob)).includes(offlineNode), 'B cannot see what A did offline yet')

    await alice.context.setOffline(false)
    await waitFor(async () => (await nodeIds(bob)).includes(offlineNode), "B to receive A's offline edit")
    await waitFor(async () => (await nodeIds(alice)).includes(bobNode), "A to receive B's edit made meanwhile")
    assert.deepEqual(await nodeIds(alice), await nodeIds(bob))
  })

  test('edits made offline survive a reload while still offline, and reach B once A is back', async () => {
    const { alice, bob } = await pairOn('offline-reload')
    // The service worker takes over on the first visit and reads again what opening the canvas
    // needs: wait until its cache holds those answers.
    await waitFor(
      () =>
        alice.page.evaluate(async () => {
          if (!navigator.serviceWorker.controller) throw new Error('no service worker controls the page')
          const cache = await caches.open('dojo-api-reads')
          const paths = (await cache.keys()).map((request) => new URL(request.url).pathname)
          if (['/api/me', '/api/catalog'].every((p) => paths.includes(p)) && paths.some((p) => p.startsWith('/api/workflows/'))) return true
          throw new Error(`cached so far: ${paths.join(', ')}`)
        }),
      'the service worker to hold what the canvas needs offline',
    )
    await alice.context.setOffline(true)
    await waitFor(
      async () => (await alice.page.getByTestId('connection').getAttribute('data-state')) === 'offline',
      'A to show the offline indicator',
    )
    const offlineNode = await addFromPalette(alice, 'text-prompt')
    await nodeById(alice, offlineNode).getByLabel('Prompt text').fill('written offline')
    // The browser's copy holds the edit: IndexedDB runs transactions on one store in order, so a
    // count made after the edit sees its write.
    await waitFor(
      () =>
        alice.page.evaluate(async () => {
          const name = (await indexedDB.databases()).map((d) => d.name).find((n) => n?.startsWith('dojo-room:'))
          if (!name) return false
          // A read transaction on the store starts after the writes queued before it commit.
          return new Promise((resolve) => {
            const open = indexedDB.open(name)
            open.onerror = () => resolve(false)
            open.onsuccess = () => {
              const db = open.result
              if (!db.objectStoreNames.contains('updates')) return resolve(db.close())
              const count = db.transaction('updates').objectStore('updates').count()
              count.onsuccess = () => {
                db.close()
                resolve(count.result > 0)
              }
              count.onerror = () => resolve(db.close())
            }
          })
        }),
      "A's canvas kept in the browser",
    )
    assert.ok(!(await nodeIds(bob)).includes(offlineNode), 'B cannot see it while A is offline')

    // A reloads with no network: the page, the API reads and the document all come from the
    // browser, and the edit is still there.
    await alice.page.reload()
    await waitFor(
      async () => (await nodeById(alice, offlineNode).getByLabel('Prompt text').inputValue()) === 'written offline',
      "A's offline edit back after the offline reload",
    )
    assert.equal(await alice.page.evaluate(() => navigator.onLine), false, 'the browser was offline throughout')
    assert.equal(await alice.page.getByTestId('connection').getAttribute('data-state'), 'offline')
    await screenshot(alice, 'offline-reload-alice')
    assert.ok(!(await nodeIds(bob)).includes(offlineNode), 'B still cannot see it')

    await alice.context.setOffline(false)
    await waitFor(async () => (await nodeIds(bob)).includes(offlineNode), "B to receive A's offline edit after A came back", 30_000)
    await waitFor(
      async () => (await nodeById(bob, offlineNode).getByLabel('Prompt text').inputValue()) === 'written offline',
      'B to see the text A wrote offline',
    )
  })
})

describe('permissions', () => {
  test('a read-only viewer sees changes but cannot move, add or delete anything', async () => {
    const { alice, bob } = await pairOn('read-only', 'read')
    await bob.page.getByTestId('read-only-banner').waitFor({ timeout: 5000 })
    const node = await addFromPalette(alice, 'blur')
    await waitFor(async () => (await nodeIds(bob)).includes(node), 'the viewer to see the new node')
    const before = await nodePosition(alice, node)
    const start = await centreOf(nodeById(bob, node).locator('header'))
    await drag(bob.page, start, { x: start.x + 200, y: start.y + 100 })
    assert.deepEqual(await nodePosition(bob, node), before, "the node does not move on the viewer's screen")
    await nodeById(bob, node).locator('header').click()
    await bob.page.keyboard.press('Delete')
    assert.ok(await bob.page.locator('[data-testid="palette-item"]').first().isDisabled(), 'the palette is disabled')
    // Alice then moves the node; once her move shows at the viewer, any write of the viewer
    // would have arrived before it.
    const aliceStart = await centreOf(nodeById(alice, node).locator('header'))
    await drag(alice.page, aliceStart, { x: aliceStart.x + 40, y: aliceStart.y })
    const afterAlice = await nodePosition(alice, node)
    await waitFor(async () => (await nodePosition(bob, node))?.x === afterAlice.x, "the viewer to see A's move")
    assert.equal(afterAlice.y, before.y, "the viewer's drag did not move the node")
    assert.ok((await nodeIds(alice)).includes(node), "the viewer's Delete did not delete it")
    await screenshot(bob, 'read-only-viewer')
  })
})
