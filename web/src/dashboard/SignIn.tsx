import { useState, type FormEvent } from 'react'
import { signInDev, signInWithToken, type Session } from '../auth/session'
import { describeError } from '../ui/errors'

interface Props {
  devMode: boolean
  onSignedIn: (session: Session) => void
}

/** Dev mode: pick a name and get a dev identity. Otherwise: paste a token from the identity provider. */
export function SignIn({ devMode, onSignedIn }: Props) {
  const [value, setValue] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  async function submit(event: FormEvent) {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      onSignedIn(devMode ? await signInDev(value.trim()) : await signInWithToken(value.trim(), false))
    } catch (cause) {
      setError(describeError(cause))
    } finally {
      setBusy(false)
    }
  }

  return (
    <main className="sign-in">
      <h1>Dojo</h1>
      <p className="muted">A shared canvas for AI models and image tools.</p>
      <form onSubmit={(e) => void submit(e)}>
        {devMode ? (
          <>
            <p className="notice">
              This server runs in <strong>dev mode</strong> (no JWT key configured): pick any name to get a dev identity.
            </p>
            <label>
              Your name
              <input
                name="name"
                autoFocus
                required
                maxLength={64}
                value={value}
                onChange={(e) => setValue(e.target.value)}
                placeholder="Ada"
              />
            </label>
            <button type="submit" disabled={busy || value.trim() === ''}>
              Continue as dev user
            </button>
          </>
        ) : (
          <>
            <label>
              Access token
              <textarea
                name="token"
                autoFocus
                required
                rows={4}
                value={value}
                onChange={(e) => setValue(e.target.value)}
                placeholder="Paste the token your identity provider issued"
              />
            </label>
            <button type="submit" disabled={busy || value.trim() === ''}>
              Sign in
            </button>
          </>
        )}
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  )
}
