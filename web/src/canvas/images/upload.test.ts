import { describe, expect, it } from 'vitest'
import { uploadRefusal } from './upload'

describe('uploadRefusal', () => {
  it('says which file, how large, and the server’s reason', () => {
    expect(uploadRefusal('noise.png', 413, 'the request body is larger than this route accepts', 43_520)).toBe(
      'noise.png (43 KB) is too large to upload: the request body is larger than this route accepts',
    )
    expect(uploadRefusal('a.gif', 415, 'uploads must be one of ["image/png"]')).toBe(
      'a.gif is not an image the server accepts: uploads must be one of ["image/png"]',
    )
    expect(uploadRefusal('big.png', 422, 'the image is 5000 × 5000 pixels')).toBe('big.png cannot be used: the image is 5000 × 5000 pixels')
    expect(uploadRefusal('x.png', null, 'cannot reach the server')).toBe('x.png was not uploaded: cannot reach the server')
  })
})
