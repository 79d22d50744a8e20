// Uploads in progress (with their progress) and refused ones (with the reason), over the
// bottom-left of the canvas, clear of the zoom controls.
import type { Upload } from './useImageUploads'

export function UploadList({ uploads, onDismiss }: { uploads: Upload[]; onDismiss: (key: number) => void }) {
  if (uploads.length === 0) return null
  return (
    <ul className="upload-list" aria-label="Uploads" data-testid="uploads">
      {uploads.map((upload) => (
        <li key={upload.key} data-testid={upload.error ? 'upload-error' : 'upload-progress'} role={upload.error ? 'alert' : 'status'}>
          {upload.error ? (
            <>
              <span className="upload-error">{upload.error}</span>
              <button onClick={() => onDismiss(upload.key)} aria-label={`Dismiss ${upload.name}`}>
                ✕
              </button>
            </>
          ) : (
            <>
              <span className="upload-name">Uploading {upload.name}</span>
              <progress max={1} value={upload.fraction} aria-label={`${upload.name} upload progress`} />
              <span className="upload-percent">{Math.round(upload.fraction * 100)}%</span>
            </>
          )}
        </li>
      ))}
    </ul>
  )
}
