// Image uploads: an image dropped on the canvas becomes an Image input node holding the upload,
// which both people see and which runs; one too large for the server is refused with the
// reason. The server here takes uploads up to 40 000 bytes (DOJO_MAX_UPLOAD_BYTES).
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { deflateSync } from 'node:zlib'
import { describe, test } from 'node:test'
import { connectHandles, dropFiles, nodeById, nodeIds, pairOnWorkflow, placeNode, screenshot, stage, waitFor } from './harness.mjs'

const LIMIT = 40_000
const theStage = stage({ env: { DOJO_MAX_UPLOAD_BYTES: String(LIMIT) } })
const pair = (title) => pairOnWorkflow(theStage, { owner: 'Uploader', guest: 'Viewer', title })

/** A PNG of `width` × `height` RGB pixels from `pixel(x, y)` (a test fixture, encoded here). */
function png(width, height, pixel) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    return c >>> 0
  })
  const crc = (bytes) => {
    let c = 0xffffffff
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8)
    return (c ^ 0xffffffff) >>> 0
  }
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length)
    out.writeUInt32BE(data.length, 0)
    out.write(type, 4, 'ascii')
    data.copy(out, 8)
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length)
    return out
  }
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header[8] = 8 // bit depth
  header[9] = 2 // RGB
  const rows = Buffer.alloc((width * 3 + 1) * height)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y)
      const at = y * (width * 3 + 1) + 1 + x * 3
      rows[at] = r
      rows[at + 1] = g
      rows[at + 2] = b
    }
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
  return Buffer.concat([signature, chunk('IHDR', header), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))])
}

const status = (person, id) => nodeById(person, id).locator('[data-testid="canvas-node"]').getAttribute('data-status')

describe('image uploads', () => {
  test('a PNG dropped on the canvas becomes an Image input node both see, and it runs', async () => {
    const { alice, bob } = await pair('upload-run')
    const small = png(48, 32, (x, y) => [x * 5, y * 7, 120])
    assert.ok(small.length < LIMIT)
    const before = new Set(await nodeIds(alice))
    await dropFiles(alice, [{ name: 'gradient.png', type: 'image/png', base64: small.toString('base64') }], { x: 120, y: 160 })
    const input = await waitFor(async () => (await nodeIds(alice)).find((id) => !before.has(id)), 'the Image input node of the drop')
    assert.equal(await nodeById(alice, input).locator('[data-testid="canvas-node"]').getAttribute('data-node-type'), 'image-input')
    // The upload is in the node for both: its preview loads with each person's own token.
    for (const person of [alice, bob]) {
      await waitFor(
        () => nodeById(person, input).getByTestId('input-image').evaluate((img) => img.complete && img.naturalWidth === 48),
        `${person.name} to see the uploaded image in the node`,
      )
    }
    assert.equal(await alice.page.getByTestId('uploads').count(), 0, 'the finished upload left the list')
    // Wired to a blur and run: the upload is what the graph reads.
    const blur = await placeNode(alice, 'blur', { x: 460, y: 160 })
    await connectHandles(alice, input, 'image', blur, 'image')
    await waitFor(async () => (await alice.page.locator('.react-flow__edge').count()) === 1, 'the wire')
    await alice.page.getByTestId('run').click()
    for (const person of [alice, bob]) {
      await waitFor(async () => ['succeeded', 'cached'].includes(await status(person, blur)), `${person.name} to see the blur finish`, 60_000)
    }
    await waitFor(
      async () => /^48 × 32 px/.test((await nodeById(alice, blur).getByTestId('output-image-size').textContent()) ?? ''),
      'the blurred upload at its own size',
    )
    await screenshot(alice, 'upload-run-alice')
  })

  test('a JPEG is converted to PNG in the browser; an image over the size limit is refused with the reason', async () => {
    const { alice } = await pair('upload-limits')
    const before = new Set(await nodeIds(alice))
    await dropFiles(alice, [{ name: 'photo.jpg', type: 'image/jpeg', draw: { width: 64, height: 40, colour: '#3a7' } }], { x: 140, y: 140 })
    const input = await waitFor(async () => (await nodeIds(alice)).find((id) => !before.has(id)), 'the node of the JPEG')
    await waitFor(
      () => nodeById(alice, input).getByTestId('input-image').evaluate((img) => img.complete && img.naturalWidth === 64),
      'the converted image in the node',
    )
    // The drop is one step of A's undo.
    await alice.page.getByRole('button', { name: 'Undo' }).click()
    await waitFor(async () => !(await nodeIds(alice)).includes(input), "A's undo to remove the upload's node")
    // Noise does not compress: well over the limit.
    const noise = randomBytes(120 * 120 * 3)
    const large = png(120, 120, (x, y) => [...noise.subarray((y * 120 + x) * 3, (y * 120 + x) * 3 + 3)])
    assert.ok(large.length > LIMIT)
    const count = (await nodeIds(alice)).length
    await dropFiles(alice, [{ name: 'noise.png', type: 'image/png', base64: large.toString('base64') }], { x: 420, y: 140 })
    const error = alice.page.getByTestId('upload-error')
    await waitFor(async () => (await error.count()) === 1, 'the refusal of the large upload')
    assert.match((await error.textContent()) ?? '', /^noise\.png \(\d+ KB\) is too large to upload: /)
    assert.equal((await nodeIds(alice)).length, count, 'no node for a refused upload')
    await screenshot(alice, 'upload-refused-alice')
    await error.getByRole('button').click()
    await waitFor(async () => (await error.count()) === 0, 'the refusal dismissed')
  })
})
