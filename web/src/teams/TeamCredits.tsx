// A team's credits: the balance its workflows' runs draw on, and each member's spend this
// month against their limit. Every member sees it; owners and admins set the limits (the
// server decides, src/teams/credits.ts only refuses what it would refuse anyway).
import { useCallback, useEffect, useState } from 'react'
import { api, type MemberSpend, type TeamCredits as Credits } from '../api/client'
import { describeError } from '../ui/errors'
import { describeSpend, parseLimit } from './credits'

interface Props {
  token: string | null
  teamId: string
  manages: boolean
}

export function TeamCredits({ token, teamId, manages }: Props) {
  const [credits, setCredits] = useState<Credits | null>(null)
  const [error, setError] = useState<string | null>(null)

  const load = useCallback(async () => {
    setCredits(await api.teamCredits(token, teamId))
  }, [token, teamId])

  useEffect(() => {
    load().catch((cause: unknown) => setError(describeError(cause)))
  }, [load])

  async function setLimit(user: string, limit: number | null) {
    setError(null)
    try {
      await api.setSpendingLimit(token, teamId, user, limit)
      await load()
    } catch (cause) {
      setError(describeError(cause))
    }
  }

  return (
    <section className="workflow-section" data-testid="team-credits">
      <h2>Credits</h2>
      {error && (
        <p className="error" role="alert" data-testid="team-credits-error">
          {error}
        </p>
      )}
      {credits && (
        <>
          <p>
            Team balance: <strong data-testid="team-balance">{credits.balance}</strong> credits, spent by runs of
            the team&apos;s workflows.
          </p>
          <ul className="collaborators">
            {credits.members.map((member) => (
              <SpendRow key={member.userId} member={member} manages={manages} onLimit={(limit) => void setLimit(member.userId, limit)} />
            ))}
          </ul>
        </>
      )}
    </section>
  )
}

interface SpendRowProps {
  member: MemberSpend
  manages: boolean
  onLimit: (limit: number | null) => void
}

function SpendRow({ member, manages, onLimit }: SpendRowProps) {
  const [text, setText] = useState(member.limit === null || member.limit === undefined ? '' : String(member.limit))
  const parsed = parseLimit(text)
  const who = member.name ?? member.userId
  return (
    <li data-testid="member-spend" data-user-id={member.userId}>
      <span>{who}</span>
      <span className="muted small" data-testid="member-spent">
        {describeSpend(member.spent, member.limit)}
      </span>
      <span className="spacer" />
      {manages && (
        <form
          onSubmit={(e) => {
            e.preventDefault()
            if (parsed !== undefined) onLimit(parsed)
          }}
        >
          <input
            aria-label={`Monthly limit of ${who}`}
            placeholder="no limit"
            inputMode="numeric"
            value={text}
            onChange={(e) => setText(e.target.value)}
          />
          <button type="submit" disabled={parsed === undefined}>
            Set limit
          </button>
        </form>
      )}
    </li>
  )
}
