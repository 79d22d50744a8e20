import { describe, expect, test } from 'vitest'
import { ApiError } from './http'

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
