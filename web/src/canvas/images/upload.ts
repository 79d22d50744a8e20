// Images dropped or pasted onto the canvas: which files are images, and each as the PNG the
// server stores (the built-in image nodes read PNG; the browser decodes JPEG, WebP, GIF… and
// re-encodes them, so any image it can show can be uploaded).

import { byteSize } from './imageFacts'

/** The image files of a drop or a paste, in order. */
export function imageFiles(data: DataTransfer | null): File[] {
  if (!data) return []
  const files = [...data.files].filter((file) => file.type.startsWith('image/'))
  if (files.length > 0) return files
  // Some browsers put pasted images only in `items`.
  return [...data.items]
    .filter((item) => item.kind === 'file' && item.type.startsWith('image/'))
    .map((item) => item.getAsFile())
    .filter((file): file is File => file !== null)
}

/** The file as PNG bytes: a PNG as it is, anything else decoded and re-encoded. */
export async function asPng(file: Blob): Promise<Blob> {
  if (file.type === 'image/png') return file
  let bitmap: ImageBitmap
  try {
    bitmap = await createImageBitmap(file)
  } catch {
    throw new Error(`this browser cannot read the image (${file.type || 'unknown type'})`)
  }
  const canvas = document.createElement('canvas')
  canvas.width = bitmap.width
  canvas.height = bitmap.height
  const context = canvas.getContext('2d')
  if (!context) throw new Error('this browser cannot convert the image to PNG')
  context.drawImage(bitmap, 0, 0)
  bitmap.close()
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('the image could not be converted to PNG'))), 'image/png'),
  )
}

/**
 * What the person sees when an upload is refused: the server's reason, said plainly (with the
 * size sent, when the server found it too large).
 */
export function uploadRefusal(fileName: string, status: number | null, message: string, bytes?: number): string {
  if (status === 413) return `${fileName}${bytes === undefined ? '' : ` (${byteSize(bytes)})`} is too large to upload: ${message}`
  if (status === 415) return `${fileName} is not an image the server accepts: ${message}`
  if (status === 422) return `${fileName} cannot be used: ${message}`
  return `${fileName} was not uploaded: ${message}`
}
