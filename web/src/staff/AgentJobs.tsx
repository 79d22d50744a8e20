// The agents' job queue, read-only: how many jobs are in each status, and the newest ones with
// their attempts and last error (docs/agents.md, "Jobs").
import { useCallback, useEffect, useState } from 'react'
import { api, type StaffJobPage } from '../api/client'
import { describeError } from '../ui/errors'
import { ago, jobCounts, shortError } from './staff'

const SHOWN = 20

export function AgentJobs({ token }: { token: string | null }) {
  const [page, setPage] = useState<StaffJobPage | null>(null)
  const [error, setError] = useState<string | null>(null)

  const load = useCallback(async () => {
    try {
      setPage(await api.agentJobs(token, SHOWN))
      setError(null)
    } catch (cause) {
      setError(describeError(cause))
    }
  }, [token])

  useEffect(() => {
    void load()
  }, [load])

  const now = Date.now()
  return (
    <section className="workflow-section" data-testid="agent-jobs">
      <div className="section-bar">
        <h2>Agent jobs</h2>
        <span className="spacer" />
        <button onClick={() => void load()}>Refresh</button>
      </div>
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
      {page === null ? (
        <p className="muted">Loading jobs…</p>
      ) : (
        <>
          <p className="staff-counts" data-testid="job-counts">
            {jobCounts(page.counts).map(({ status, count }) => (
              <span key={status} className={`badge status-${status}`} data-status={status} data-count={count}>
                {status} {count}
              </span>
            ))}
          </p>
          {page.jobs.length === 0 ? (
            <p className="muted small">No jobs yet.</p>
          ) : (
            <table className="staff-jobs">
              <thead>
                <tr>
                  <th>Type</th>
                  <th>Status</th>
                  <th>Attempts</th>
                  <th>Created</th>
                  <th>Last error</th>
                </tr>
              </thead>
              <tbody>
                {page.jobs.map((job) => (
                  <tr key={job.id} data-testid="agent-job" data-type={job.type} data-status={job.status}>
                    <td>
                      <code>{job.type}</code>
                    </td>
                    <td>
                      <span className={`badge status-${job.status}`}>{job.status}</span>
                    </td>
                    <td>
                      {job.attempts}/{job.maxAttempts}
                    </td>
                    <td className="muted" title={new Date(job.createdAt).toLocaleString()}>
                      {ago(job.createdAt, now)}
                    </td>
                    <td className="muted" title={job.lastError ?? undefined}>
                      {shortError(job)}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </>
      )}
    </section>
  )
}
