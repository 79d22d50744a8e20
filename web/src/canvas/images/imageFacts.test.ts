import { describe, expect, test } from 'vitest'
import { byteSize, downloadName, imageFacts, pixelSize } from './imageFacts'

describe('image facts', () => {
  test('pixels, then bytes, each only when known', () => {
    expect(pixelSize(1024, 768)).toBe('1024 × 768 px')
    expect(imageFacts({ width: 512, height: 512 }, 1_258_291)).toBe('512 × 512 px · 1.2 MB')
    expect(imageFacts({ width: 64, height: 32 })).toBe('64 × 32 px')
    expect(imageFacts(null, 2048)).toBe('2.0 KB')
    expect(imageFacts(null)).toBe('')
  })

  test('byte sizes read as people write them', () => {
    expect(byteSize(900)).toBe('900 B')
    expect(byteSize(1536)).toBe('1.5 KB')
    expect(byteSize(200 * 1024)).toBe('200 KB')
    expect(byteSize(3 * 1024 * 1024)).toBe('3.0 MB')
  })

  test('a download is named after its asset, with the extension of its type', () => {
    expect(downloadName('asset_01ab', 'image/jpeg')).toBe('dojo-asset_01ab.jpg')
    expect(downloadName('asset_01ab', undefined)).toBe('dojo-asset_01ab.png')
    expect(downloadName('../etc/passwd', 'image/png')).toBe('dojo-___etc_passwd.png')
  })
})
