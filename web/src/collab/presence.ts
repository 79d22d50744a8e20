// Presence through Yjs awareness: who is in the room, where their cursor is (in canvas
// coordinates, so it lands on the same spot whatever each viewer's zoom), what they selected,
// and whether they are idle. Nothing here is stored; it vanishes when a peer disconnects.

import { useEffect, useState } from 'react'
import type { Awareness } from 'y-protocols/awareness'
import { isRecord } from '../api/http'
import type { XY } from '../doc/schema'

export interface PresenceUser {
  id: string
  name: string
  color: string
}

export interface PresenceState {
  user: PresenceUser
  cursor: XY | null
  selection: string[]
  idle: boolean
}

export interface Peer extends PresenceState {
  clientId: number
}

const COLOURS = ['#e5484d', '#0091ff', '#30a46c', '#f76b15', '#8e4ec6', '#d6409f', '#12a594', '#ad7f58']

export function colourFor(key: string): string {
  let hash = 0
  for (const char of key) hash = (hash * 31 + char.charCodeAt(0)) >>> 0
  return COLOURS[hash % COLOURS.length] as string
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean)
  const letters = parts.length > 1 ? [parts[0]?.[0], parts[1]?.[0]] : [name[0], name[1]]
  return letters.filter(Boolean).join('').toUpperCase() || '?'
}

function readPresence(value: unknown): PresenceState | null {
  if (!isRecord(value) || !isRecord(value.user)) return null
  const { id, name, color } = value.user
  if (typeof name !== 'string' || typeof color !== 'string') return null
  const cursor = isRecord(value.cursor) && typeof value.cursor.x === 'number' && typeof value.cursor.y === 'number'
    ? { x: value.cursor.x, y: value.cursor.y }
    : null
  const selection = Array.isArray(value.selection) ? value.selection.filter((s): s is string => typeof s === 'string') : []
  return { user: { id: typeof id === 'string' ? id : '', name, color }, cursor, selection, idle: value.idle === true }
}

export function peersOf(awareness: Awareness): Peer[] {
  const peers: Peer[] = []
  awareness.getStates().forEach((state, clientId) => {
    if (clientId === awareness.clientID) return
    const presence = readPresence(state)
    if (presence) peers.push({ ...presence, clientId })
  })
  return peers.sort((a, b) => a.clientId - b.clientId)
}

/** The other people in the room, live. */
export function usePeers(awareness: Awareness): Peer[] {
  const [peers, setPeers] = useState(() => peersOf(awareness))
  useEffect(() => {
    const update = () => setPeers(peersOf(awareness))
    awareness.on('change', update)
    update()
    return () => awareness.off('change', update)
  }, [awareness])
  return peers
}

/** Node id → the peers who have it selected. */
export function selectionsByNode(peers: Peer[]): Map<string, Peer[]> {
  const map = new Map<string, Peer[]>()
  for (const peer of peers) {
    for (const id of peer.selection) {
      const list = map.get(id) ?? []
      list.push(peer)
      map.set(id, list)
    }
  }
  return map
}

const IDLE_AFTER_MS = 60_000

/** Publishes this user's identity and marks them idle after a minute without input. */
export function useLocalPresence(awareness: Awareness, user: PresenceUser): void {
  useEffect(() => {
    awareness.setLocalStateField('user', user)
    awareness.setLocalStateField('cursor', null)
    awareness.setLocalStateField('selection', [])
    awareness.setLocalStateField('idle', false)
    let timer = window.setTimeout(goIdle, IDLE_AFTER_MS)
    function goIdle() {
      awareness.setLocalStateField('idle', true)
    }
    function active() {
      if (awareness.getLocalState()?.idle === true) awareness.setLocalStateField('idle', false)
      window.clearTimeout(timer)
      timer = window.setTimeout(goIdle, IDLE_AFTER_MS)
    }
    const hidden = () => {
      if (document.visibilityState === 'hidden') goIdle()
      else active()
    }
    window.addEventListener('pointermove', active)
    window.addEventListener('keydown', active)
    document.addEventListener('visibilitychange', hidden)
    return () => {
      window.clearTimeout(timer)
      window.removeEventListener('pointermove', active)
      window.removeEventListener('keydown', active)
      document.removeEventListener('visibilitychange', hidden)
    }
  }, [awareness, user])
}
