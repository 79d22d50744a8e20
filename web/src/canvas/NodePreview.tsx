// A running node's live preview (docs/document-schema.md, `results[node].preview`): the
// provider's latest intermediate image and the last lines of its log, small, while the node
// runs. The executor removes the preview when the node ends; the editor also shows it only
// while the status says running, so a stale one never sits beside a final result.
import type { NodeResult } from '../doc/schema'
import { useCanvas } from './context'

/** Log lines shown under the preview image. */
export const PREVIEW_LINES = 3

/** The preview to show for a node's result: only while it runs, and only with something in it. */
export function previewToShow(result: NodeResult | null): NodeResult['preview'] {
  if (!result || result.status !== 'running') return null
  return result.preview
}

/** The last `count` non-blank lines of a log. */
export function lastLines(text: string, count: number): string[] {
  if (count <= 0) return []
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.trim().length > 0)
    .slice(-count)
}

export function NodePreview({ result }: { result: NodeResult | null }) {
  const { assetUrl } = useCanvas()
  const preview = previewToShow(result)
  if (!preview) return null
  const lines = preview.text ? lastLines(preview.text, PREVIEW_LINES) : []
  return (
    <div className="node-preview" data-testid="node-preview">
      {preview.image && (
        <img className="preview-image" src={assetUrl(preview.image.url)} alt="preview while running" data-testid="preview-image" />
      )}
      {lines.length > 0 && (
        <pre className="preview-text muted small" data-testid="preview-text">
          {lines.join('\n')}
        </pre>
      )}
    </div>
  )
}
