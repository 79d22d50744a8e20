#!/usr/bin/env node
// The y-websocket reference server (@y/websocket-server), started the way its own
// src/server.js starts it (that file is not exported), on HOST:PORT (PORT=0: any free port).
// Prints "listening on HOST:PORT" once it accepts connections. YPERSISTENCE=DIR turns on its
// LevelDB persistence (read by @y/websocket-server/utils when it is imported).
import http from 'node:http'
import { WebSocketServer } from 'ws'
import { setupWSConnection } from '@y/websocket-server/utils'

const host = process.env.HOST || '127.0.0.1'
const port = Number.parseInt(process.env.PORT || '0', 10)

const wss = new WebSocketServer({ noServer: true })
const server = http.createServer((_request, response) => {
  response.writeHead(200, { 'Content-Type': 'text/plain' })
  response.end('okay')
})
wss.on('connection', setupWSConnection)
server.on('upgrade', (request, socket, head) => {
  wss.handleUpgrade(request, socket, head, ws => wss.emit('connection', ws, request))
})
server.listen(port, host, () => {
  const address = server.address()
  console.log(`listening on ${address.address}:${address.port}`)
})
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0))
