// The local cluster of scripts/cluster.sh (HAProxy, two dojo-server instances, two dojo-worker,
// PostgreSQL, a private Redis) driven from a test: start, crash or drain an instance, start it
// again, read each instance's /metrics and HAProxy's view of the instances, stop.
//
// The binaries come from $BIN_DIR (default ../../target/debug from tests/interop). The script
// runs asynchronously, never with spawnSync: while an instance drains, the clients of this
// process must keep answering on their sockets.

import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { interopDir } from './server.js'
import { waitFor } from './clients.js'

const repoRoot = path.resolve(interopDir, '../..')
const script = path.join(repoRoot, 'scripts/cluster.sh')

export function binDir () {
  const fromEnv = process.env.BIN_DIR
  return fromEnv ? path.resolve(fromEnv) : path.join(repoRoot, 'target/debug')
}

function run (dir, args, timeoutMs) {
  return new Promise((resolve, reject) => {
    execFile(script, args, {
      cwd: repoRoot,
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      env: { ...process.env, BIN_DIR: binDir(), DOJO_CLUSTER_DIR: dir },
      maxBuffer: 1024 * 1024
    }, (error, stdout, stderr) => {
      if (error) {
        error.message = `scripts/cluster.sh ${args.join(' ')} failed (${error.killed ? `killed after ${timeoutMs} ms` : `exit ${error.code}`})\n` +
          `--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`
        reject(error)
      } else {
        resolve({ stdout, stderr })
      }
    })
  })
}

export class LocalCluster {
  constructor (dir, env) {
    this.dir = dir
    this.env = env
    this.lb = env.DOJO_CLUSTER_LB
    this.instances = [env.DOJO_CLUSTER_SERVER_1, env.DOJO_CLUSTER_SERVER_2]
  }

  /** Starts the whole cluster in a directory of its own (bounded by the script's own waits). */
  static async start () {
    const dir = mkdtempSync(path.join(tmpdir(), 'dojo-cluster-'))
    try {
      await run(dir, ['start'], 120_000)
    } catch (err) {
      rmSync(dir, { recursive: true, force: true })
      throw err
    }
    const env = Object.fromEntries(readFileSync(path.join(dir, 'cluster.env'), 'utf8')
      .split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
    return new LocalCluster(dir, env)
  }

  /** What ClientPool needs: the load balancer's room URLs. */
  get roomsUrl () { return `${this.lb.replace(/^http/, 'ws')}/rooms` }
  roomUrl (room) { return `${this.roomsUrl}/${room}` }
  get collabUrl () { return `${this.lb.replace(/^http/, 'ws')}/collab` }

  /** Instance `n` (1 or 2) directly, bypassing HAProxy. */
  direct (n) {
    const addr = this.instances[n - 1]
    return { roomsUrl: `ws://${addr}/rooms`, roomUrl: (room) => `ws://${addr}/rooms/${room}` }
  }

  /** SIGKILL instance n. */
  async kill (n) { await run(this.dir, ['kill', String(n)], 30_000) }

  /** SIGTERM instance n and wait for its exit; returns the seconds the drain took. */
  async drain (n) {
    const { stdout } = await run(this.dir, ['drain', String(n)], 90_000)
    return Number(stdout.trim().split('\n').pop())
  }

  /** Starts instance n again on its port and waits until HAProxy routes to it. */
  async startServer (n) {
    await run(this.dir, ['start-server', String(n)], 60_000)
    await this.waitHaproxy(n, 'UP')
  }

  /** HAProxy's status of each instance in the rooms backend: { dojo1: 'UP', dojo2: 'DOWN' }. */
  async haproxyStatus () {
    const res = await fetch(`${this.env.DOJO_CLUSTER_STATS};csv`, { signal: AbortSignal.timeout(2000) })
    const csv = await res.text()
    const out = {}
    for (const line of csv.split('\n')) {
      const f = line.split(',')
      if (f[0] === 'dojo_rooms' && /^dojo[12]$/.test(f[1])) out[f[1]] = f[17]
    }
    return out
  }

  async waitHaproxy (n, status, timeout = 20_000) {
    let last = null
    await waitFor(async () => {
      last = await this.haproxyStatus()
      return (last[`dojo${n}`] ?? '').startsWith(status)
    }, { timeout, interval: 100, message: `HAProxy to report instance ${n} ${status}`, describe: () => `HAProxy says ${JSON.stringify(last)}` })
  }

  /** A gauge or counter from instance n's /metrics (loopback peers may read it). */
  async metric (n, name) {
    const res = await fetch(`http://${this.instances[n - 1]}/metrics`, { signal: AbortSignal.timeout(2000) })
    if (!res.ok) throw new Error(`/metrics of instance ${n}: HTTP ${res.status}`)
    const text = await res.text()
    const line = text.split('\n').find((l) => l.startsWith(`${name} `))
    if (!line) throw new Error(`no ${name} in the metrics of instance ${n}`)
    return Number(line.split(' ')[1])
  }

  /** Open WebSockets per instance ([n1, n2]; null for an instance that does not answer). */
  async connections () {
    return Promise.all([1, 2].map((n) => this.metric(n, 'dojo_connections_open').catch(() => null)))
  }

  /** A server log's tail, for failure messages. */
  log (name, max = 3000) {
    try {
      const text = readFileSync(path.join(this.dir, 'logs', `${name}.log`), 'utf8')
      return text.length > max ? '…' + text.slice(-max) : text
    } catch (err) {
      return `(no log: ${err.message})`
    }
  }

  logs () {
    return ['dojo-1', 'dojo-2', 'haproxy'].map((n) => `--- ${n} (tail) ---\n${this.log(n, 2000)}`).join('\n')
  }

  async stop () {
    try {
      await run(this.dir, ['stop'], 120_000)
    } finally {
      if (!process.env.DOJO_CLUSTER_KEEP_LOGS) rmSync(this.dir, { recursive: true, force: true })
    }
  }
}
