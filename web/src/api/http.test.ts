// The generated client's answers become data, ApiError or NetworkError exactly as the editor's
// error handling expects, against a real HTTP server on a local port.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import createClient from 'openapi-fetch'
import { afterAll, beforeAll, describe, expect, it, test } from 'vitest'
import { ApiError, NetworkError, call } from './http'
import type { paths } from './schema'

let server: Server
let baseUrl = ''

beforeAll(async () => {
  server = createServer((request, response) => {
    const send = (status: number, body: string) => {
      response.writeHead(status, { 'content-type': 'application/json' })
      response.end(body)
    }
    if (request.url === '/api/me') {
      send(200, JSON.stringify({ id: 'u1', subject: 's', name: null, email: null, credits: 3, anonymous: false }))
    } else if (request.url === '/api/rooms/r%20one/runs' && request.method === 'POST') {
      send(402, JSON.stringify({ error: 'short', code: 'insufficient_credits', balance: 1, cost: 5 }))
    } else if (request.url === '/api/workflows/gone' && request.method === 'DELETE') {
      response.writeHead(204)
      response.end()
    } else {
      // An older server's router: a bare 404 with no body.
      response.writeHead(404)
      response.end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

describe('call', () => {
  it('returns the typed data of a success', async () => {
    const client = createClient<paths>({ baseUrl })
    const me = await call(() => client.GET('/api/me'))
    expect(me.credits).toBe(3)
  })

  it('returns nothing for 204', async () => {
    const client = createClient<paths>({ baseUrl })
    await expect(call(() => client.DELETE('/api/workflows/{id}', { params: { path: { id: 'gone' } } }))).resolves.toBeUndefined()
  })

  it('turns the error envelope into ApiError with its code and extra fields', async () => {
    const client = createClient<paths>({ baseUrl })
    const error = await call(() =>
      client.POST('/api/rooms/{room}/runs', { params: { path: { room: 'r one' } }, body: {} }),
    ).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    const apiError = error as ApiError
    expect([apiError.status, apiError.code, apiError.message, apiError.body?.cost]).toEqual([402, 'insufficient_credits', 'short', 5])
    expect(apiError.routeMissing).toBe(false)
  })

  it('reports a route the server does not have as routeMissing', async () => {
    const client = createClient<paths>({ baseUrl })
    const error = await call(() => client.GET('/api/runs/{id}', { params: { path: { id: 'x' } } })).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect((error as ApiError).routeMissing).toBe(true)
  })

  it('turns a refused connection into NetworkError', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const client = createClient<paths>({ baseUrl: `http://127.0.0.1:${port}` })
    await expect(call(() => client.GET('/api/me'))).rejects.toBeInstanceOf(NetworkError)
  })
})

describe('ApiError.routeMissing', () => {
  test('a route the server does not have: route_not_found, or a bare 404 from an older server', () => {
    expect(new ApiError(404, 'no route has this path', 'route_not_found', null).routeMissing).toBe(true)
    expect(new ApiError(404, '404 Not Found', null, null).routeMissing).toBe(true)
  })

  test('a thing that does not exist is not a missing route', () => {
    expect(new ApiError(404, 'no run "run_1"', 'not_found', null).routeMissing).toBe(false)
    expect(new ApiError(404, 'no room "r"', 'room_not_found', null).routeMissing).toBe(false)
    expect(new ApiError(405, 'this route does not take this method', 'method_not_allowed', null).routeMissing).toBe(
      false,
    )
  })
})
