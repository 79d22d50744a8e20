// A two-route router on the History API: `/` (dashboard) and `/w/{workflowId}` (canvas).
import { useEffect, useState } from 'react'

export type Route = { page: 'dashboard' } | { page: 'canvas'; workflowId: string }

export function parseRoute(path: string): Route {
  const match = /^\/w\/([^/]+)\/?$/.exec(path)
  if (match?.[1]) return { page: 'canvas', workflowId: decodeURIComponent(match[1]) }
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
