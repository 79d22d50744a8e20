// Who the editor acts as. In dev mode (no JWT key on the server) a one-click dev identity is
// minted by POST /api/dev/token; otherwise the user pastes a token from the identity provider.
// The token lives in localStorage, so a reload or a second window keeps the identity.

import { api, type Me } from '../api/client'
import { ApiError, NetworkError } from '../api/http'
import { forgetCachedReads } from '../offline/apiCache'

const TOKEN_KEY = 'dojo.token'
const DEV_NAME_KEY = 'dojo.devName'
const DEV_EMAIL_KEY = 'dojo.devEmail'
/** What the server said the last time it was reachable, for opening the editor offline. */
const DEV_MODE_KEY = 'dojo.devMode'

export interface Session {
  token: string | null
  me: Me
  devMode: boolean
}

/** Whether the server runs in dev mode: GET /api/me without a token answers an anonymous caller. */
export async function detectDevMode(): Promise<boolean> {
  try {
    const me = await api.me(null)
    store(DEV_MODE_KEY, String(me.anonymous))
    return me.anonymous
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      store(DEV_MODE_KEY, 'false')
      return false
    }
    // Offline: the answer it gave last time (the service worker never caches anonymous reads).
    const remembered = stored(DEV_MODE_KEY)
    if (error instanceof NetworkError && remembered !== null) return remembered === 'true'
    throw error
  }
}

/** The token of whoever is signed in at this browser, if anyone. */
export function storedToken(): string | null {
  return stored(TOKEN_KEY)
}

function stored(key: string): string | null {
  try {
    return localStorage.getItem(key)
  } catch {
    return null
  }
}

function store(key: string, value: string | null): void {
  try {
    if (value === null) localStorage.removeItem(key)
    else localStorage.setItem(key, value)
  } catch {
    // Storage disabled: the session lasts as long as the page.
  }
}

/** The stored session if its token still works; a dev identity is re-minted when it expired. */
export async function restoreSession(devMode: boolean): Promise<Session | null> {
  const token = stored(TOKEN_KEY)
  if (token) {
    try {
      return { token, me: await api.me(token), devMode }
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) throw error
      store(TOKEN_KEY, null)
    }
  }
  const devName = stored(DEV_NAME_KEY)
  if (devMode && devName) return signInDev(devName, stored(DEV_EMAIL_KEY) ?? undefined)
  return null
}

/** A dev identity; with an email (treated as verified in dev mode) it receives invitations sent to that address. */
export async function signInDev(name: string, email?: string): Promise<Session> {
  const { token } = await api.devToken(name, email || undefined)
  await forgetCachedReads().catch(() => undefined)
  store(TOKEN_KEY, token)
  store(DEV_NAME_KEY, name)
  store(DEV_EMAIL_KEY, email || null)
  return { token, me: await api.me(token), devMode: true }
}

export async function signInWithToken(token: string, devMode: boolean): Promise<Session> {
  await forgetCachedReads().catch(() => undefined)
  const me = await api.me(token)
  store(TOKEN_KEY, token)
  return { token, me, devMode }
}

/**
 * A fresh token after the old one expired (close code 4401, HTTP 401): dev identities are
 * minted again under the same name; a provider's token cannot be renewed from here (null).
 */
export async function renewToken(devMode: boolean): Promise<string | null> {
  const devName = stored(DEV_NAME_KEY)
  if (!devMode || !devName) return null
  try {
    return (await signInDev(devName, stored(DEV_EMAIL_KEY) ?? undefined)).token
  } catch {
    return null
  }
}

export function signOut(): void {
  store(TOKEN_KEY, null)
  store(DEV_NAME_KEY, null)
  store(DEV_EMAIL_KEY, null)
  void forgetCachedReads().catch(() => undefined)
}

export function currentToken(): string | null {
  return stored(TOKEN_KEY)
}
