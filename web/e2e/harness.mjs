// The end-to-end harness: a real dojo-server (temp SQLite database and assets, serving web/dist) and
// Debian's Chromium driven by playwright-core. Every wait has a deadline and says what it was
// waiting for, so a broken editor fails a test rather than hanging it.

import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before } from 'node:test'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

const here = path.dirname(fileURLToPath(import.meta.url))
export const webDir = path.resolve(here, '..')
export const outputDir = path.join(webDir, 'test-output')
const LISTENING = /dojo-server listening on (\S+):(\d+)/

export const DEADLINE_MS = 15_000

export function serverBinary() {
  const fromEnv = process.env.DOJO_SERVER_BIN
  return fromEnv ? path.resolve(fromEnv) : path.resolve(webDir, '../target/debug/dojo-server')
}

/** Starts dojo-server on a free port with a fresh SQLite database and asset directory, serving the built editor. */
export async function startServer({ env = {} } = {}) {
  const bin = serverBinary()
  if (!existsSync(bin)) {
    throw new Error(`dojo-server not found at ${bin}: run \`cargo build -p dojo-server\` or set DOJO_SERVER_BIN`)
  }
  const dist = process.env.DOJO_WEB_DIR ?? path.join(webDir, 'dist')
  if (!existsSync(path.join(dist, 'index.html'))) throw new Error(`no built editor in ${dist}: run \`npm run build\``)
  const dataDir = mkdtempSync(path.join(tmpdir(), 'dojo-e2e-'))
  const child = spawn(bin, ['--addr', '127.0.0.1:0'], {
    env: {
      ...process.env,
      DATABASE_URL: `sqlite:${path.join(dataDir, 'dojo.db')}`,
      // The default (`data/assets`) is relative to the working directory, which is web/ under
      // `npm run test:e2e`: run outputs then landed in the source tree. Keep them with the database.
      DOJO_ASSETS_DIR: path.join(dataDir, 'assets'),
      DOJO_WEB_DIR: dist,
      DOJO_LOG: process.env.DOJO_LOG ?? 'warn',
      // Browsers of one test share a user per context; keep the per-user limits out of the way.
      DOJO_HTTP_RATE: '1000',
      DOJO_HTTP_BURST: '5000',
      // No provider keys, whatever this machine's environment holds: the stories know which
      // nodes can run (the built-in ones) and never call a paid service.
      OPENAI_API_KEY: '',
      REPLICATE_API_TOKEN: '',
      FAL_KEY: '',
      STABILITY_API_KEY: '',
      // Workflow permissions as with a key, so the stories can share, use roles and be refused;
      // dev-mode.test.mjs runs with the default (every dev identity edits every workflow).
      DOJO_DEV_OPEN_WORKFLOWS: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-20_000)
  })
  let stdout = ''
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dojo-server did not start within 20 s\n${stderr}`)), 20_000)
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk) => {
      stdout += chunk
      const match = LISTENING.exec(stdout)
      if (match) {
        clearTimeout(timer)
        resolve(`http://${match[1]}:${match[2]}`)
      }
    })
    child.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`dojo-server exited with ${code} before listening\n${stderr}`))
    })
  })
  return {
    url,
    /** The server's database, for `dojo-server admin …` commands run beside it. */
    databaseUrl: `sqlite:${path.join(dataDir, 'dojo.db')}`,
    stderrTail: () => stderr,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(timer)
      }
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
  })
}

/**
 * Polls `check` until it returns something truthy, or fails with `message` (and the last
 * value seen) at the deadline.
 */
export async function waitFor(check, message, timeout = DEADLINE_MS) {
  const deadline = Date.now() + timeout
  let last
  let lastError
  for (;;) {
    try {
      last = await check()
      if (last) return last
    } catch (error) {
      lastError = error
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeout} ms waiting for: ${message}` +
          (last !== undefined ? `\nlast value: ${JSON.stringify(last)}` : '') +
          (lastError ? `\nlast error: ${lastError.stack ?? lastError}` : ''),
      )
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A person: their own browser context (storage, identity), signed in with a dev name (and an email, if given). */
export async function signIn(browser, server, name, email) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } })
  const page = await context.newPage()
  const problems = []
  page.on('pageerror', (error) => problems.push(`${name}: page error: ${error.message}`))
  await page.goto(server.url)
  await page.getByLabel('Your name').fill(name)
  if (email) await page.getByLabel(/^Email/).fill(email)
  await page.getByRole('button', { name: 'Continue as dev user' }).click()
  await page.getByTestId('user-id').waitFor({ timeout: DEADLINE_MS })
  const token = await page.evaluate(() => localStorage.getItem('dojo.token'))
  const me = await api(server, token, 'GET', '/api/me')
  return { name, context, page, token, me, problems }
}

/** Runs `dojo-server admin ARGS…` on the stage's database (the operator's command line). */
export function adminCommand(server, args) {
  return execFileSync(serverBinary(), ['admin', ...args], {
    env: { ...process.env, DATABASE_URL: server.databaseUrl, DOJO_LOG: 'warn' },
    encoding: 'utf8',
  })
}

/** Calls the HTTP API as a user. */
export async function api(server, token, method, route, body) {
  const response = await fetch(server.url + route, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  })
  const text = await response.text()
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`)
  return text ? JSON.parse(text) : null
}

/** Creates a workflow through the dashboard and returns its id (the page is on its canvas). */
export async function createWorkflow(person, title) {
  await person.page.getByLabel('New workflow title').fill(title)
  await person.page.getByRole('button', { name: 'Create workflow' }).click()
  await person.page.waitForURL(/\/w\//, { timeout: DEADLINE_MS })
  await waitForLive(person)
  return decodeURIComponent(new URL(person.page.url()).pathname.split('/')[2])
}

export async function openWorkflow(person, server, id) {
  await person.page.goto(`${server.url}/w/${encodeURIComponent(id)}`)
  await waitForLive(person)
}

export async function waitForLive(person) {
  await waitFor(
    async () => (await person.page.getByTestId('connection').getAttribute('data-state')) === 'online',
    `${person.name}'s canvas to be live`,
  )
}

export const nodes = (person) => person.page.locator('.react-flow__node')
export const nodeById = (person, id) => person.page.locator(`.react-flow__node[data-id="${id}"]`)

/** Ids of the nodes on a person's canvas, sorted. */
export async function nodeIds(person) {
  const ids = await nodes(person).evaluateAll((els) => els.map((el) => el.getAttribute('data-id')))
  return ids.sort()
}

/** Adds a node from the palette; returns the new node's id. */
export async function addFromPalette(person, type) {
  const before = new Set(await nodeIds(person))
  await person.page.locator(`[data-testid="palette-item"][data-node-type="${type}"]`).click()
  return waitFor(async () => (await nodeIds(person)).find((id) => !before.has(id)), `${person.name}'s new ${type} node`)
}

/** The node's position on the canvas (React Flow's transform), in flow coordinates. */
export async function nodePosition(person, id) {
  const transform = await nodeById(person, id).evaluate((el) => el.style.transform)
  const match = /translate\(([-\d.]+)px,\s*([-\d.]+)px\)/.exec(transform)
  return match ? { x: Number(match[1]), y: Number(match[2]) } : null
}

/** Drags from one point to another with intermediate moves, as a hand would. */
export async function drag(page, from, to) {
  await page.mouse.move(from.x, from.y)
  await page.mouse.down()
  const steps = 8
  for (let i = 1; i <= steps; i++) {
    await page.mouse.move(from.x + ((to.x - from.x) * i) / steps, from.y + ((to.y - from.y) * i) / steps)
  }
  await page.mouse.up()
}

export async function centreOf(locator) {
  const box = await locator.boundingBox()
  if (!box) throw new Error('element has no box (not visible)')
  return { x: box.x + box.width / 2, y: box.y + box.height / 2 }
}

/** Wires `source`'s output handle to `target`'s input handle with the mouse. */
export async function connectHandles(person, source, sourceHandle, target, targetHandle) {
  const from = await centreOf(nodeById(person, source).locator(`.react-flow__handle.source[data-handleid="${sourceHandle}"]`))
  const to = await centreOf(nodeById(person, target).locator(`.react-flow__handle.target[data-handleid="${targetHandle}"]`))
  await drag(person.page, from, to)
}

export async function screenshot(person, name) {
  mkdirSync(outputDir, { recursive: true })
  await person.page.screenshot({ path: path.join(outputDir, `${name}.png`) })
}

/**
 * Drops files on the canvas at `at` (pixels from the pane's top-left corner) as a person
 * dragging them from their desktop would: a `drop` event whose DataTransfer holds the files.
 * (Playwright cannot drag files from outside the page.) Each file: `{name, type, base64}`, or
 * `{name, type, draw: {width, height, colour}}` to have the page paint one in that format.
 */
export async function dropFiles(person, files, at) {
  const pane = await person.page.locator('.react-flow__pane').boundingBox()
  await person.page.evaluate(
    async ({ files, x, y }) => {
      const transfer = new DataTransfer()
      for (const file of files) {
        let blob
        if (file.base64) {
          blob = new Blob([Uint8Array.from(atob(file.base64), (c) => c.charCodeAt(0))], { type: file.type })
        } else {
          const canvas = new OffscreenCanvas(file.draw.width, file.draw.height)
          const context = canvas.getContext('2d')
          context.fillStyle = file.draw.colour
          context.fillRect(0, 0, file.draw.width, file.draw.height)
          blob = await canvas.convertToBlob({ type: file.type })
        }
        transfer.items.add(new File([blob], file.name, { type: file.type }))
      }
      const target = document.querySelector('.react-flow__pane')
      const init = { bubbles: true, cancelable: true, clientX: x, clientY: y, dataTransfer: transfer }
      target.dispatchEvent(new DragEvent('dragover', init))
      target.dispatchEvent(new DragEvent('drop', init))
    },
    { files, x: pane.x + at.x, y: pane.y + at.y },
  )
}

/** The routes the server documents in its OpenAPI description. */
export async function documentedRoutes(server) {
  const response = await fetch(`${server.url}/api/openapi.json`)
  const spec = await response.json()
  return new Set(Object.keys(spec.paths ?? {}))
}

/**
 * Adds a node from the palette and drags it by its header to about `at` (pixels from the pane's
 * top-left corner), so the nodes of a test do not overlap. (Playwright's emulated HTML5
 * drag-and-drop reports inconsistent drop coordinates, so the palette's drag source is not used.)
 */
export async function placeNode(person, type, at) {
  const id = await addFromPalette(person, type)
  const pane = await person.page.locator('.react-flow__pane').boundingBox()
  const header = nodeById(person, id).locator('header')
  const box = await header.boundingBox()
  await drag(person.page, { x: box.x + 20, y: box.y + box.height / 2 }, { x: pane.x + at.x + 20, y: pane.y + at.y })
  return id
}

/**
 * The stage of one test file: a server and a browser started before its tests and stopped after
 * them. Everyone who joined (`stage.people`) must have seen no page errors by the end.
 * `started(stage)` runs once both are up (in the same hook: root-level hooks of a file are not
 * ordered after one another).
 */
export function stage({ started, env } = {}) {
  const stage = { server: undefined, browser: undefined, people: [] }
  before(async () => {
    stage.server = await startServer({ env })
    stage.browser = await launchBrowser()
    await started?.(stage)
  })
  after(async () => {
    for (const person of stage.people) {
      assert.deepEqual(person.problems, [], `${person.name} saw no page errors`)
      await person.context.close()
    }
    await stage.browser?.close()
    await stage.server?.stop()
  })
  return stage
}

/**
 * Two people on the stage: `owner` creates a workflow titled `title` and shares it with `guest`
 * (write, unless said otherwise); both have it open. Names get a number so each pair is new.
 */
export async function pairOnWorkflow(stage, { owner, guest, title, permission = 'write' }) {
  const { browser, server, people } = stage
  const first = await signIn(browser, server, `${owner} ${people.length}`)
  const second = await signIn(browser, server, `${guest} ${people.length}`)
  people.push(first, second)
  const id = await createWorkflow(first, title)
  await api(server, first.token, 'PUT', `/api/workflows/${id}/collaborators/${second.me.id}`, { permission })
  await openWorkflow(second, server, id)
  return { alice: first, bob: second, id }
}
