// A small router on the History API: `/` (dashboard), `/w/{workflowId}` (canvas),
// `/teams/{teamId}` (a team's members, invitations and audit log), `/app/{appId}` (a
// published app's form: no canvas, no document) and `/staff` (the staff screen).
import { useEffect, useState } from 'react'

export type Route =
  | { page: 'dashboard' }
  | { page: 'canvas'; workflowId: string }
  | { page: 'team'; teamId: string }
  | { page: 'app'; appId: string }
  | { page: 'staff' }

export function parseRoute(path: string): Route {
  const match = /^\/w\/([^/]+)\/?$/.exec(path)
  if (match?.[1]) return { page: 'canvas', workflowId: decodeURIComponent(match[1]) }
  const team = /^\/teams\/([^/]+)\/?$/.exec(path)
  if (team?.[1]) return { page: 'team', teamId: decodeURIComponent(team[1]) }
  const app = /^\/app\/([^/]+)\/?$/.exec(path)
  if (app?.[1]) return { page: 'app', appId: decodeURIComponent(app[1]) }
  if (/^\/staff\/?$/.test(path)) return { page: 'staff' }
  return { page: 'dashboard' }
}

export function navigate(path: string): void {
  window.history.pushState(null, '', path)
  window.dispatchEvent(new PopStateEvent('popstate'))
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.pathname))
  useEffect(() => {
    const update = () => setRoute(parseRoute(window.location.pathname))
    window.addEventListener('popstate', update)
    return () => window.removeEventListener('popstate', update)
  }, [])
  return route
}
