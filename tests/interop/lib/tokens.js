// HS256 tokens for servers started with DOJO_JWT_SECRET=SECRET, signed the way any JWT library
// would (node:crypto only, so the tests do not trust a library Dojo does not use).

import { createHmac } from 'node:crypto'

export const SECRET = 'interop test secret, thirty-two bytes or more'

const b64url = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** A token for `sub`, with optional room `grants` ({room: 'read'|'write'|'admin'}), valid `ttl` s. */
export function token (sub, { grants, ttl = 600 } = {}) {
  const header = b64url({ alg: 'HS256', typ: 'JWT' })
  const claims = b64url({ sub, exp: Math.floor(Date.now() / 1000) + ttl, ...(grants ? { grants } : {}) })
  const signature = createHmac('sha256', SECRET).update(`${header}.${claims}`).digest('base64url')
  return `${header}.${claims}.${signature}`
}
