import { useCallback, useEffect, useState } from 'react'
import { detectDevMode, restoreSession, signOut, storedToken, type Session } from './auth/session'
import { forgetLocalCopies } from './collab/connection'
import { AppPage } from './app/AppPage'
import { CanvasPage } from './canvas/CanvasPage'
import { Dashboard } from './dashboard/Dashboard'
import { SignIn } from './dashboard/SignIn'
import { StaffPage } from './staff/StaffPage'
import { TeamPage } from './teams/TeamPage'
import { whenServiceWorkerTakesOver } from './offline/apiCache'
import { describeError } from './ui/errors'
import { api } from './api/client'
import { useRoute } from './ui/router'
import { useTheme } from './ui/theme'

type Boot = { kind: 'loading' } | { kind: 'failed'; message: string } | { kind: 'ready'; devMode: boolean }

export function App() {
  const [theme, toggleTheme] = useTheme()
  const route = useRoute()
  const [boot, setBoot] = useState<Boot>({ kind: 'loading' })
  const [session, setSession] = useState<Session | null>(null)

  const start = useCallback(async () => {
    setBoot({ kind: 'loading' })
    try {
      const devMode = await detectDevMode()
      setSession(await restoreSession(devMode))
      setBoot({ kind: 'ready', devMode })
    } catch (error) {
      setBoot({ kind: 'failed', message: describeError(error) })
    }
  }, [])

  useEffect(() => {
    void start()
  }, [start])

  // The first visit's profile read happened before the service worker could keep it: read it
  // again through the worker, so the editor opens offline from now on. (The stored token, not
  // the session's: the worker may take over while the session is still being restored.)
  useEffect(
    () =>
      whenServiceWorkerTakesOver(() => {
        const token = storedToken()
        if (token) void api.me(token).catch(() => undefined)
      }),
    [],
  )

  const leave = useCallback(() => {
    if (session) void forgetLocalCopies(session.me.id).catch(() => undefined)
    signOut()
    setSession(null)
  }, [session])

  if (boot.kind === 'loading') return <div className="splash">Loading Dojo…</div>
  if (boot.kind === 'failed') {
    return (
      <div className="splash" role="alert">
        <p>{boot.message}</p>
        <button onClick={() => void start()}>Try again</button>
      </div>
    )
  }
  if (!session) return <SignIn devMode={boot.devMode} onSignedIn={setSession} />
  if (route.page === 'canvas') {
    return (
      <CanvasPage
        key={route.workflowId}
        workflowId={route.workflowId}
        session={session}
        onSession={setSession}
        theme={theme}
        onToggleTheme={toggleTheme}
      />
    )
  }
  if (route.page === 'app') return <AppPage key={route.appId} appId={route.appId} session={session} />
  if (route.page === 'team') return <TeamPage key={route.teamId} teamId={route.teamId} session={session} />
  if (route.page === 'staff') return <StaffPage session={session} />
  return <Dashboard session={session} onSignOut={leave} theme={theme} onToggleTheme={toggleTheme} />
}
