// The live connection to a room: a Yjs document kept in sync by y-websocket's provider, and
// what the user should be told about it.
//
// - Offline (browser offline, server unreachable): edits stay in the document and are merged
//   when the connection comes back (y-websocket resends the difference on reconnect). The
//   document is also kept in the browser (y-indexeddb, one database per user and room), so
//   edits made offline survive a reload or a closed tab and are sent once the room is open again.
// - 4401 (token expired): y-websocket stops on 44xx close codes; we renew the token (dev mode)
//   and reconnect, or ask the user to sign in again.
// - 1012 (permissions changed): y-websocket reconnects by itself; access is checked again on
//   the upgrade.
// - A refused upgrade (401/403 before the WebSocket opens) is invisible to browser code: the
//   socket just fails. After repeated failures we ask the HTTP API why.

import { IndexeddbPersistence } from 'y-indexeddb'
import { WebsocketProvider } from 'y-websocket'
import * as Y from 'yjs'

export type ConnectionState =
  | { kind: 'connecting' }
  | { kind: 'online'; synced: boolean }
  | { kind: 'offline'; reason: string }
  | { kind: 'denied'; reason: string }
  | { kind: 'expired' }

/** What the HTTP API says about our access when the socket keeps failing. */
export type AccessVerdict = 'ok' | 'expired' | 'denied' | 'unreachable'

export interface RoomConnectionOptions {
  room: string
  token: string | null
  /** A fresh token after expiry, or null when the user must sign in again. */
  renewToken: () => Promise<string | null>
  checkAccess: () => Promise<AccessVerdict>
  /** Defaults to ws(s)://<this host>/rooms. */
  serverUrl?: string
  /**
   * The browser database the document is kept in between visits (y-indexeddb); none: the
   * document lives in the tab only. One per user and room (`localStoreName`), so people who
   * share a browser do not share unsent edits.
   */
  localStore?: string
}

/**
 * Deletes the copies of every room this user kept in this browser (on sign-out: the next
 * person at this browser does not get them). Edits not yet sent are lost with them.
 */
export async function forgetLocalCopies(userId: string): Promise<void> {
  if (typeof indexedDB === 'undefined' || typeof indexedDB.databases !== 'function') return
  const prefix = `dojo-room:${userId}:`
  const names = (await indexedDB.databases()).map((db) => db.name).filter((name): name is string => !!name?.startsWith(prefix))
  for (const name of names) indexedDB.deleteDatabase(name)
}

/** The browser database of one user's copy of one room. */
export function localStoreName(userId: string, room: string): string {
  return `dojo-room:${userId}:${room}`
}

export function defaultRoomsUrl(): string {
  const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws'
  return `${scheme}://${window.location.host}/rooms`
}

export class RoomConnection {
  readonly doc = new Y.Doc()
  readonly provider: WebsocketProvider
  /** The copy kept in the browser, when there is one. */
  readonly local: IndexeddbPersistence | null
  private state: ConnectionState = { kind: 'connecting' }
  private readonly listeners = new Set<() => void>()
  private failures = 0
  private opened = false
  private checking = false
  private destroyed = false
  private notice: string | null = null

  constructor(private readonly options: RoomConnectionOptions) {
    // Loaded from the browser first (what was not sent last time included); the server's copy
    // merges in as the socket syncs, and the difference goes to the server.
    this.local = options.localStore && typeof indexedDB !== 'undefined' ? new IndexeddbPersistence(options.localStore, this.doc) : null
    this.provider = new WebsocketProvider(options.serverUrl ?? defaultRoomsUrl(), options.room, this.doc, {
      params: tokenParams(options.token),
      // Every change goes through the server, which checks permissions; tabs do not sync
      // with each other behind its back.
      disableBc: true,
      maxBackoffTime: 5000,
    })
    this.provider.on('status', ({ status }) => {
      if (status === 'connected') {
        this.opened = true
        this.failures = 0
        this.notice = null
        this.set({ kind: 'online', synced: this.provider.synced })
      } else if (status === 'disconnected' && this.state.kind === 'online') {
        this.set({ kind: 'offline', reason: this.notice ?? 'connection lost; reconnecting…' })
      }
    })
    this.provider.on('sync', (synced: boolean) => {
      if (this.state.kind === 'online') this.set({ kind: 'online', synced })
    })
    this.provider.on('connection-close', (event: CloseEvent | null) => this.onClose(event))
    this.provider.on('closed', ({ code }: { code: number }) => {
      if (code === 4401) void this.reconnectWithFreshToken()
    })
    window.addEventListener('offline', this.onBrowserOffline)
    window.addEventListener('online', this.onBrowserOnline)
    if (!navigator.onLine) this.onBrowserOffline()
  }

  get awareness() {
    return this.provider.awareness
  }

  getState = (): ConnectionState => this.state

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  destroy(): void {
    this.destroyed = true
    window.removeEventListener('offline', this.onBrowserOffline)
    window.removeEventListener('online', this.onBrowserOnline)
    this.provider.destroy()
    // Closes the browser database; what it holds stays for the next visit.
    void this.local?.destroy()
    this.doc.destroy()
    this.listeners.clear()
  }

  private set(state: ConnectionState): void {
    if (this.destroyed) return
    this.state = state
    for (const listener of this.listeners) listener()
  }

  private onClose(event: CloseEvent | null): void {
    if (event === null) return // closed by us (disconnect, watchdog)
    const wasOpen = this.opened
    this.opened = false
    if (event.code === 4401) {
      this.notice = 'your session expired; renewing…'
      this.set({ kind: 'offline', reason: this.notice })
      return
    }
    if (event.code === 1012) {
      this.notice = 'permissions changed; reconnecting…'
      this.set({ kind: 'offline', reason: this.notice })
      return
    }
    if (!wasOpen) {
      this.failures += 1
      if (this.state.kind === 'connecting' || this.state.kind === 'offline') {
        this.set({ kind: 'offline', reason: 'cannot reach the server; retrying…' })
      }
      if (this.failures >= 2) void this.diagnose()
    }
  }

  /** The socket keeps failing before it opens: ask the HTTP API whether we are let in at all. */
  private async diagnose(): Promise<void> {
    if (this.checking) return
    this.checking = true
    try {
      const verdict = await this.options.checkAccess()
      if (verdict === 'expired') await this.reconnectWithFreshToken()
      else if (verdict === 'denied') {
        this.provider.disconnect()
        this.set({ kind: 'denied', reason: 'You do not have access to this workflow (it was unshared, made private or deleted).' })
      }
    } finally {
      this.checking = false
    }
  }

  private async reconnectWithFreshToken(): Promise<void> {
    const token = await this.options.renewToken()
    if (token === null) {
      this.provider.disconnect()
      this.set({ kind: 'expired' })
      return
    }
    this.provider.params = tokenParams(token)
    this.provider.connect()
  }

  private readonly onBrowserOffline = () => {
    this.provider.disconnect()
    this.set({
      kind: 'offline',
      reason: this.local
        ? 'you are offline; edits are kept in this browser (also across a reload) and merged when you are back'
        : 'you are offline; edits are kept and merged when you are back',
    })
  }

  private readonly onBrowserOnline = () => {
    this.set({ kind: 'connecting' })
    this.provider.connect()
  }
}

function tokenParams(token: string | null): Record<string, string> {
  return token ? { token } : {}
}
