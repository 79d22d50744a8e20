// What the editor says about an image: its size in pixels (and bytes, when the server said),
// and the name it is saved under.

/** An image output as the lightbox shows it. */
export interface ShownImage {
  /** The URL to load, with the caller's token. */
  src: string
  /** The file name a download gets. */
  fileName: string
  /** Bytes, when the document's asset entry carries them. */
  bytes?: number
}

export function pixelSize(width: number, height: number): string {
  return `${width} × ${height} px`
}

export function byteSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`
}

/** "1024 × 768 px · 1.2 MB": what is known, in that order. */
export function imageFacts(pixels: { width: number; height: number } | null, bytes?: number): string {
  const parts: string[] = []
  if (pixels) parts.push(pixelSize(pixels.width, pixels.height))
  if (bytes !== undefined) parts.push(byteSize(bytes))
  return parts.join(' · ')
}

const EXTENSIONS: Record<string, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'image/gif': 'gif',
  'image/svg+xml': 'svg',
}

/** `dojo-{asset id}.{ext}`, the extension from the content type (png when unknown). */
export function downloadName(assetId: string, contentType: string | undefined): string {
  const safeId = assetId.replace(/[^A-Za-z0-9_-]/g, '_') || 'image'
  return `dojo-${safeId}.${EXTENSIONS[contentType ?? ''] ?? 'png'}`
}
