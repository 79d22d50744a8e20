// A team's AI provider keys, for its owners and admins. The server seals each key (AES-256-GCM)
// and answers with its last four characters only, so nothing here can show a stored key: the
// field a key is typed into is a password field, emptied as soon as the server took the key.
import { useCallback, useEffect, useState } from 'react'
import { api, type ProviderKey } from '../api/client'
import { describeError } from '../ui/errors'
import { maskedKey, PROVIDERS, providerLabel } from './providers'

interface Props {
  token: string | null
  teamId: string
}

export function ProviderKeys({ token, teamId }: Props) {
  const [keys, setKeys] = useState<ProviderKey[]>([])
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  const load = useCallback(async () => {
    setKeys((await api.teamProviderKeys(token, teamId)).keys)
  }, [token, teamId])

  useEffect(() => {
    load().catch((cause: unknown) => setError(describeError(cause)))
  }, [load])

  async function act(action: () => Promise<unknown>): Promise<boolean> {
    setBusy(true)
    setError(null)
    try {
      await action()
      await load()
      return true
    } catch (cause) {
      setError(describeError(cause))
      return false
    } finally {
      setBusy(false)
    }
  }

  return (
    <section className="workflow-section" data-testid="provider-keys">
      <h2>Provider keys</h2>
      <p className="muted small">
        Runs in this team's workflows use these keys instead of the server's. A stored key is never shown again, only
        its last four characters.
      </p>
      <ul className="collaborators">
        {PROVIDERS.map((provider) => (
          <ProviderKeyRow
            key={provider}
            provider={provider}
            stored={keys.find((k) => k.provider === provider) ?? null}
            busy={busy}
            onSave={(key) => act(() => api.setTeamProviderKey(token, teamId, provider, key))}
            onRemove={() => void act(() => api.deleteTeamProviderKey(token, teamId, provider))}
          />
        ))}
      </ul>
      {error && (
        <p className="error" role="alert" data-testid="provider-key-error">
          {error}
        </p>
      )}
    </section>
  )
}

interface RowProps {
  provider: string
  stored: ProviderKey | null
  busy: boolean
  onSave: (key: string) => Promise<boolean>
  onRemove: () => void
}

function ProviderKeyRow({ provider, stored, busy, onSave, onRemove }: RowProps) {
  const [draft, setDraft] = useState('')
  const label = providerLabel(provider)

  async function save(event: React.FormEvent) {
    event.preventDefault()
    if (!draft.trim()) return
    // The typed key leaves the page's state whether or not the server took it: a refused key
    // is typed again rather than kept in memory.
    const key = draft
    setDraft('')
    await onSave(key)
  }

  return (
    <li data-testid="provider-key" data-provider={provider}>
      <span>{label}</span>
      <code className="muted small" data-testid="provider-key-mask">
        {stored ? maskedKey(stored.lastFour) : 'server key'}
      </code>
      {stored && (
        <span className="muted small">set {new Date(stored.setAt).toLocaleDateString()}</span>
      )}
      <span className="spacer" />
      <form onSubmit={(e) => void save(e)} className="inline-form">
        <input
          type="password"
          autoComplete="off"
          aria-label={`${label} API key`}
          placeholder={stored ? 'Replace key' : 'Paste key'}
          value={draft}
          maxLength={1024}
          onChange={(e) => setDraft(e.target.value)}
          disabled={busy}
        />
        <button type="submit" disabled={busy || !draft.trim()}>
          Save
        </button>
      </form>
      {stored && (
        <button className="danger" disabled={busy} onClick={onRemove} aria-label={`Remove the ${label} key`}>
          Remove
        </button>
      )}
    </li>
  )
}
