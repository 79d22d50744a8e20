#!/usr/bin/env node
// A plain Hocuspocus server (@hocuspocus/server): in memory, no extensions, default
// configuration, on HOST:PORT (PORT=0: any free port). Prints "listening on HOST:PORT".
import { Server } from '@hocuspocus/server'

const host = process.env.HOST || '127.0.0.1'
const port = Number.parseInt(process.env.PORT || '0', 10)

const server = new Server({ address: host, port, quiet: true })
await server.listen()
console.log(`listening on ${host}:${server.address.port}`)
