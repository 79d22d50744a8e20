// Spawns the dojo-server binary for a test file and stops it afterwards.
//
// The binary is taken from $DOJO_SERVER_BIN, else ../../target/debug/dojo-server relative to
// tests/interop. It is started as `dojo-server --addr 127.0.0.1:0`; its single STDOUT line
// `dojo-server listening on 127.0.0.1:PORT` tells us the port. Everything it writes to stderr
// is kept (bounded) so failures can show it.

import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { existsSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const here = path.dirname(fileURLToPath(import.meta.url))
export const interopDir = path.resolve(here, '..')

export const LISTENING_RE = /^dojo-server listening on (\d{1,3}(?:\.\d{1,3}){3}):(\d+)$/

const STARTUP_TIMEOUT_MS = 20_000
const STOP_TIMEOUT_MS = 15_000
const MAX_KEPT_STDERR = 64 * 1024

export function serverBinary () {
  const fromEnv = process.env.DOJO_SERVER_BIN
  return fromEnv ? path.resolve(fromEnv) : path.resolve(interopDir, '../../target/debug/dojo-server')
}

/**
 * A running dojo-server process.
 */
export class DojoServer {
  constructor (child) {
    this.child = child
    this.port = null
    this.host = null
    this.stdout = ''
    this._stderr = ''
    this.exited = false
    this.exitCode = null
    this.exitSignal = null
    this._exitPromise = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exited = true
        this.exitCode = code
        this.exitSignal = signal
        resolve({ code, signal })
      })
    })
    child.stderr.setEncoding('utf8')
    child.stderr.on('data', (chunk) => {
      if (process.env.DOJO_INTEROP_VERBOSE) process.stderr.write(chunk)
      this._stderr += chunk
      if (this._stderr.length > MAX_KEPT_STDERR * 2) {
        this._stderr = this._stderr.slice(-MAX_KEPT_STDERR)
      }
    })
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk) => { this.stdout += chunk })
  }

  /** Base URL to hand to `new WebsocketProvider(baseUrl, room, doc)`. */
  get roomsUrl () {
    return `ws://${this.host}:${this.port}/rooms`
  }

  roomUrl (room) {
    return `${this.roomsUrl}/${room}`
  }

  /** The last `max` characters the server wrote to stderr. */
  stderrTail (max = 8000) {
    return this._stderr.length > max ? '…' + this._stderr.slice(-max) : this._stderr
  }

  /** Resolves with {code, signal} once the process exited; rejects after `timeoutMs`. */
  waitForExit (timeoutMs = STOP_TIMEOUT_MS) {
    if (this.exited) return Promise.resolve({ code: this.exitCode, signal: this.exitSignal })
    let timer
    return Promise.race([
      this._exitPromise.finally(() => clearTimeout(timer)),
      new Promise((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(
          `dojo-server (pid ${this.child.pid}) did not exit within ${timeoutMs} ms\n` +
          `--- server stderr (tail) ---\n${this.stderrTail()}`)), timeoutMs)
      })
    ])
  }

  /**
   * SIGTERM, then wait for a graceful exit; SIGKILL if it does not come.
   * Returns {code, signal, graceful}.
   */
  async stop (timeoutMs = STOP_TIMEOUT_MS) {
    if (this.exited) return { code: this.exitCode, signal: this.exitSignal, graceful: true }
    this.child.kill('SIGTERM')
    try {
      const res = await this.waitForExit(timeoutMs)
      return { ...res, graceful: true }
    } catch (err) {
      this.child.kill('SIGKILL')
      const res = await this.waitForExit(5_000).catch(() => ({ code: null, signal: null }))
      return { ...res, graceful: false, error: err }
    }
  }
}

/**
 * Starts the server and waits for its listening line.
 * @param {{ args?: string[], env?: Record<string,string> }} [opts]
 * @returns {Promise<DojoServer>}
 */
export async function startServer ({ args = [], env = {}, databaseUrl } = {}) {
  const bin = serverBinary()
  if (!existsSync(bin)) {
    throw new Error(
      `dojo-server binary not found at ${bin}.\n` +
      'Build it with `cargo build -p dojo-server` (from the workspace root) ' +
      'or point DOJO_SERVER_BIN at it.')
  }
  // Each server stores in a fresh SQLite file of its own, removed when the process exits.
  // A test that restarts a server on the same store passes its own `databaseUrl` (and owns it).
  const dataDir = mkdtempSync(join(tmpdir(), 'dojo-interop-'))
  const dbUrl = databaseUrl ?? `sqlite:${join(dataDir, 'dojo.db')}`
  const child = spawn(bin, ['--addr', '127.0.0.1:0', '--database-url', dbUrl, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env }
  })
  child.once('exit', () => rmSync(dataDir, { recursive: true, force: true }))
  const server = new DojoServer(child)

  await new Promise((resolve, reject) => {
    let settled = false
    const finish = (err) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      child.stdout.off('data', onData)
      child.off('exit', onExit)
      child.off('error', onError)
      if (err) {
        child.kill('SIGKILL')
        reject(err)
      } else {
        resolve()
      }
    }
    const describe = (what) => new Error(
      `${what}\n  binary: ${bin}\n  stdout so far: ${JSON.stringify(server.stdout)}\n` +
      `--- server stderr (tail) ---\n${server.stderrTail()}`)
    const onData = () => {
      const nl = server.stdout.indexOf('\n')
      if (nl === -1) return
      const line = server.stdout.slice(0, nl).replace(/\r$/, '')
      const m = LISTENING_RE.exec(line)
      if (!m) {
        finish(describe(`dojo-server printed an unexpected first STDOUT line: ${JSON.stringify(line)}`))
        return
      }
      server.host = m[1]
      server.port = Number(m[2])
      finish()
    }
    const onExit = (code, signal) =>
      // give stderr a moment to drain so the message shows why
      setTimeout(() => finish(describe(
        `dojo-server exited during start-up (code ${code}, signal ${signal})`)), 100)
    const onError = (err) => finish(describe(`failed to spawn dojo-server: ${err.message}`))
    const timer = setTimeout(() => finish(describe(
      `dojo-server did not print its listening line within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS)
    child.stdout.on('data', onData)
    child.on('exit', onExit)
    child.on('error', onError)
    onData()
  })
  return server
}
