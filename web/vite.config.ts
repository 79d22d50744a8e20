/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// The dev server proxies everything that belongs to dojo-server, so the editor talks to one
// origin in development exactly as it does when dojo-server serves the built bundle.
const server = process.env.DOJO_DEV_SERVER ?? 'http://127.0.0.1:8787'

export default defineConfig({
  plugins: [react()],
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
