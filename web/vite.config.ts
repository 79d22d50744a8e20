/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'
import { VitePWA } from 'vite-plugin-pwa'

// The dev server proxies everything that belongs to dojo-server, so the editor talks to one
// origin in development exactly as it does when dojo-server serves the built bundle.
const server = process.env.DOJO_DEV_SERVER ?? 'http://127.0.0.1:8787'

export default defineConfig({
  plugins: [
    react(),
    // A service worker (Workbox) so that the editor opens with no network at all: the shell and
    // bundle are precached, and the few reads a canvas needs before its document (who I am, the
    // catalog, the workflow) answer from the last copy when the network does not. The document
    // itself comes from y-indexeddb; edits wait there and sync when the room is reached again.
    // Nothing else of the API is cached, and signing out deletes these copies
    // (src/offline/apiCache.ts).
    VitePWA({
      strategies: 'generateSW',
      registerType: 'autoUpdate',
      injectRegister: false,
      manifest: false,
      workbox: {
        globPatterns: ['**/*.{js,css,html,svg,png,ico,woff2}'],
        navigateFallback: '/index.html',
        // Server paths are never the editor's page (mirrors SERVER_PREFIXES in server/src/web.rs).
        navigateFallbackDenylist: [/^\/api\//, /^\/rooms\//, /^\/assets\//, /^\/collab/, /^\/metrics/, /^\/health/],
        cleanupOutdatedCaches: true,
        // Control the page that registered it, so the first visit is already cached for offline.
        clientsClaim: true,
        skipWaiting: true,
        runtimeCaching: [
          {
            // The API reads a canvas needs to open: the catalog, and with a token who I am, my
            // workflows and one workflow. A read without a token (the dev-mode probe of
            // /api/me) is never kept: it would answer for the signed-in one under the same URL.
            // (Inline: Workbox copies this function's source into the worker.)
            urlPattern: ({ url, request, sameOrigin }) =>
              sameOrigin &&
              request.method === 'GET' &&
              (url.pathname === '/api/catalog' ||
                (request.headers.has('authorization') && /^\/api\/(me|workflows(\/[^/]+)?)$/.test(url.pathname))),
            handler: 'NetworkFirst',
            options: {
              cacheName: 'dojo-api-reads',
              networkTimeoutSeconds: 4,
              expiration: { maxEntries: 100 },
              cacheableResponse: { statuses: [200] },
            },
          },
        ],
      },
    }),
  ],
  build: {
    // dojo-server reserves /assets/{id} for generated images: the bundle lives under /static/.
    assetsDir: 'static',
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: {
      '/api': { target: server, changeOrigin: true },
      '/assets': { target: server, changeOrigin: true },
      '/rooms': { target: server.replace(/^http/, 'ws'), ws: true, changeOrigin: true },
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
})
