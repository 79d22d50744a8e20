import { useState, type ChangeEvent, type FormEvent } from 'react'
import { signInDev, signInWithToken, type Session } from '../auth/session'
import { describeError } from '../ui/errors'

interface Props {
  devMode: boolean
  onSignedIn: (session: Session) => void
}

/** Dev mode: pick a name and get a dev identity. Otherwise: paste a token from the identity provider. */
export function SignIn({ devMode, onSignedIn }: Props) {
  const [value, setValue] = useState('')
  const [email, setEmail] = useState('')
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  async function submit(event: FormEvent) {
    event.preventDefault()
    setBusy(true)
    setError(null)
    try {
      onSignedIn(devMode ? await signInDev(value.trim(), email.trim() || undefined) : await signInWithToken(value.trim(), false))
    } catch (cause) {
      setError(describeError(cause))
    } finally {
      setBusy(false)
    }
  }

  // The two modes differ only in what is asked for: a name (dev mode) or a pasted token.
  const field = {
    autoFocus: true,
    required: true,
    value,
    onChange: (e: ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => setValue(e.target.value),
  }
  const mode = devMode
    ? {
        label: 'Your name',
        input: <input name="name" maxLength={64} placeholder="Ada" {...field} />,
        submit: 'Continue as dev user',
      }
    : {
        label: 'Access token',
        input: <textarea name="token" rows={4} placeholder="Paste the token your identity provider issued" {...field} />,
        submit: 'Sign in',
      }

  return (
    <main className="sign-in">
      <h1>Dojo</h1>
      <p className="muted">A shared canvas for AI models and image tools.</p>
      <form onSubmit={(e) => void submit(e)}>
        {devMode && (
          <p className="notice">
            This server runs in <strong>dev mode</strong> (no JWT key configured): pick any name to get a dev identity.
          </p>
        )}
        <label>
          {mode.label}
          {mode.input}
        </label>
        {devMode && (
          <label>
            Email (optional: receives what is shared with this address)
            <input
              name="email"
              type="email"
              maxLength={254}
              placeholder="ada@example.com"
              value={email}
              onChange={(e) => setEmail(e.target.value)}
            />
          </label>
        )}
        <button type="submit" disabled={busy || value.trim() === ''}>
          {mode.submit}
        </button>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  )
}
