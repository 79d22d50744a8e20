// The share dialog: the owner invites people by email or user id as viewers or editors, changes or
// removes them, and makes the workflow public (read-only for anyone signed in with the link).
// Everyone else sees the link and who owns the workflow.
import type { Workflow } from '../api/client'
import { CollaboratorList } from './CollaboratorList'
import { InviteForm } from './InviteForm'
import { PendingInvitations } from './PendingInvitations'
import { ShareLink } from './ShareLink'
import { useSharing } from './useSharing'

interface Props {
  workflow: Workflow
  token: string | null
  onClose: () => void
}

export function ShareDialog({ workflow, token, onClose }: Props) {
  const sharing = useSharing(workflow.id, token)
  const owner = workflow.permission === 'admin'
  const url = `${window.location.origin}/w/${encodeURIComponent(workflow.id)}`
  const detail = sharing.detail
  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div className="modal share-dialog" role="dialog" aria-label="Share" data-testid="share-dialog" onClick={(e) => e.stopPropagation()}>
        <header className="dialog-header">
          <h2>Share “{workflow.title}”</h2>
          <button className="icon" aria-label="Close share dialog" onClick={onClose}>
            ×
          </button>
        </header>
        {owner ? (
          <>
            <InviteForm busy={sharing.busy} onInvite={sharing.invite} />
            {sharing.notice && (
              <p className="notice small" role="status" data-testid="share-notice">
                {sharing.notice}
              </p>
            )}
            {detail && (
              <CollaboratorList
                ownerId={detail.ownerId}
                collaborators={detail.collaborators}
                busy={sharing.busy}
                onChangeRole={(userId, permission) => void sharing.setRole(userId, permission)}
                onRemove={(userId) => void sharing.remove(userId)}
              />
            )}
            <PendingInvitations
              invitations={sharing.invitations}
              busy={sharing.busy}
              onRevoke={(email) => void sharing.revoke(email)}
            />
            {detail && (
              <label className="public-toggle">
                <input
                  type="checkbox"
                  checked={detail.public}
                  disabled={sharing.busy}
                  onChange={(e) => void sharing.setPublic(e.target.checked)}
                  data-testid="public-toggle"
                />
                Public: anyone signed in who has the link can view (read-only)
              </label>
            )}
          </>
        ) : (
          <p className="muted">
            Owned by <code>{workflow.ownerId}</code>. Only the owner can change who has access.
          </p>
        )}
        {sharing.error && (
          <p className="error" role="alert" data-testid="share-error">
            {sharing.error}
          </p>
        )}
        <ShareLink url={url} />
      </div>
    </div>
  )
}
