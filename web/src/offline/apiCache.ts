// The service worker (built by vite-plugin-pwa, see vite.config.ts) lets the editor open with no
// network: its precache holds the page and bundle, and the cache named here holds the last
// answers to the few API reads a canvas needs before its document. Those answers are one
// person's, keyed by URL only, so they are deleted whenever the signed-in person changes.

/** Must match `cacheName` in vite.config.ts. */
export const API_READS_CACHE = 'dojo-api-reads'

/** Registers the service worker of a production build (a dev server has none). */
export function registerServiceWorker(): void {
  if (!import.meta.env.PROD || typeof navigator === 'undefined' || !('serviceWorker' in navigator)) return
  window.addEventListener('load', () => {
    navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch(() => {
      // Without it the editor works online as before; only opening it offline does not.
    })
  })
}

/** Deletes the cached API answers (on sign-in and sign-out: they belong to one person). */
export async function forgetCachedReads(): Promise<void> {
  if (typeof caches === 'undefined') return
  await caches.delete(API_READS_CACHE)
}

/**
 * Calls `warm` once when a service worker first takes control of this page (the first visit:
 * the page's reads were made before it could cache them), so that the canvas opens offline
 * from the first visit on. Returns the unsubscribe.
 */
export function whenServiceWorkerTakesOver(warm: () => void): () => void {
  if (typeof navigator === 'undefined' || !('serviceWorker' in navigator) || navigator.serviceWorker.controller) {
    return () => undefined
  }
  const container = navigator.serviceWorker
  const listener = () => warm()
  container.addEventListener('controllerchange', listener, { once: true })
  return () => container.removeEventListener('controllerchange', listener)
}
