// The staff screen (`/staff`, docs/agents.md): the support queue with the support agent's
// drafts, the accounts the fraud agent flagged, and the agents' job queue. Only staff and admins
// (`staffRole` in GET /api/me, granted with `dojo-server admin grant-staff`) see it; everyone
// else reads "staff only", and the server refuses their calls anyway.
import { useEffect, useState } from 'react'
import { api } from '../api/client'
import type { Session } from '../auth/session'
import { navigate } from '../ui/router'
import { AgentJobs } from './AgentJobs'
import { FlaggedAccounts } from './FlaggedAccounts'
import { SupportQueue } from './SupportQueue'

interface Props {
  session: Session
}

export function StaffPage({ session }: Props) {
  const token = session.token
  // The role as the server says it now: it may have been granted or taken away since sign-in.
  const [role, setRole] = useState<string | null | undefined>(undefined)

  useEffect(() => {
    let live = true
    api
      .me(token)
      .then((me) => live && setRole(me.staffRole))
      .catch(() => live && setRole(session.me.staffRole))
    return () => {
      live = false
    }
  }, [token, session.me.staffRole])

  const back = (
    <a
      href="/"
      onClick={(e) => {
        e.preventDefault()
        navigate('/')
      }}
    >
      ← Workflows
    </a>
  )
  if (role === undefined) {
    return (
      <main className="dashboard">
        <header className="topbar">{back}</header>
        <p className="muted">Loading…</p>
      </main>
    )
  }
  if (!role) {
    return (
      <main className="dashboard">
        <header className="topbar">
          {back}
          <h1>Staff</h1>
        </header>
        <p className="notice" role="alert" data-testid="staff-only">
          Staff only. This screen is for the studio’s staff; ask an administrator if you should have access.
        </p>
      </main>
    )
  }
  return (
    <main className="dashboard staff-page" data-testid="staff-page">
      <header className="topbar">
        {back}
        <h1>Staff</h1>
        <span className="muted small" data-testid="staff-role">
          you are {role}
        </span>
      </header>
      <SupportQueue token={token} />
      <FlaggedAccounts token={token} />
      <AgentJobs token={token} />
    </main>
  )
}
