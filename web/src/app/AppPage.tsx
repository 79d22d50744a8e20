// A published app's form (`/app/{appId}`, docs/apps.md): the inputs its owner chose, a Run
// button, where the run is in the queue and how far it got, then the chosen outputs. It loads
// neither the canvas nor the room's document: the server answers with the form only, and the
// run is billed to whoever presses Run.
import { useCallback, useEffect, useRef, useState } from 'react'
import { api, uploadImage, type AppForm, type AppInputField, type AppRun } from '../api/client'
import type { Session } from '../auth/session'
import { describeError } from '../ui/errors'
import { navigate } from '../ui/router'
import { initialValues, valueOf, type FieldValue } from './publishChoices'

const POLL_MS = 1000

interface Props {
  appId: string
  session: Session
}

const finished = (run: AppRun | null) => run !== null && ['succeeded', 'failed', 'cancelled'].includes(run.status)

export function AppPage({ appId, session }: Props) {
  const token = session.token
  const [form, setForm] = useState<AppForm | null>(null)
  const [missing, setMissing] = useState<string | null>(null)
  const [values, setValues] = useState<Record<string, FieldValue>>({})
  const [run, setRun] = useState<AppRun | null>(null)
  const [runId, setRunId] = useState<string | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const timer = useRef<number | null>(null)

  useEffect(() => {
    api
      .appForm(token, appId)
      .then((loaded) => {
        setForm(loaded)
        setValues(initialValues(loaded.inputs))
      })
      .catch((cause: unknown) => setMissing(describeError(cause)))
  }, [token, appId])

  // Follows the run until it finishes: its queue position, the steps done, then the outputs.
  const follow = useCallback(
    async (id: string) => {
      try {
        const now = await api.appRun(token, appId, id)
        setRun(now)
        if (!finished(now)) timer.current = window.setTimeout(() => void follow(id), POLL_MS)
      } catch (cause) {
        setError(describeError(cause))
      }
    },
    [token, appId],
  )

  useEffect(
    () => () => {
      if (timer.current !== null) window.clearTimeout(timer.current)
    },
    [],
  )

  async function start(event: React.FormEvent) {
    event.preventDefault()
    setBusy(true)
    setError(null)
    setRun(null)
    try {
      const started = await api.runApp(token, appId, values)
      setRunId(started.runId)
      await follow(started.runId)
    } catch (cause) {
      setError(describeError(cause))
    } finally {
      setBusy(false)
    }
  }

  async function upload(field: AppInputField, file: File | undefined) {
    if (!file) return
    setError(null)
    try {
      const stored = await uploadImage(token, null, file, () => undefined)
      setValues((v) => ({ ...v, [field.key]: stored.id }))
    } catch (cause) {
      setError(describeError(cause))
    }
  }

  const withToken = (url: string) => (token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url)

  if (missing) {
    return (
      <div className="splash" role="alert" data-testid="app-missing">
        <p>This app does not exist, or it is not shared with you.</p>
        <p className="small">{missing}</p>
        <button onClick={() => navigate('/')}>Your workflows</button>
      </div>
    )
  }
  if (!form) return <div className="splash">Opening the app…</div>
  const running = runId !== null && !finished(run)

  return (
    <main className="app-page" data-testid="app-page">
      <header>
        <h1>{form.title}</h1>
        {form.description && <p className="app-description">{form.description}</p>}
        <p className="small">Runs use your credits ({session.me.credits} now).</p>
      </header>
      <form onSubmit={(e) => void start(e)} className="app-form">
        {form.inputs.map((field) => (
          <Field key={field.key} field={field} value={values[field.key] ?? null} disabled={busy || running} onChange={(v) => setValues((all) => ({ ...all, [field.key]: v }))} onUpload={(file) => void upload(field, file)} />
        ))}
        <button type="submit" disabled={busy || running} data-testid="app-run">
          Run
        </button>
      </form>
      {run && (
        <section className="app-run" data-testid="app-run-status" data-status={run.status}>
          {run.status === 'queued' && <p>Queued{run.queuePosition !== null ? `: number ${run.queuePosition} in line` : ''}.</p>}
          {run.status === 'running' && (
            <p>
              Running: {run.done} of {run.total} steps done.
              <progress max={Math.max(run.total, 1)} value={run.done} />
            </p>
          )}
          {run.status === 'succeeded' && <p>Done. It cost {run.charged} credit(s).</p>}
          {(run.status === 'failed' || run.status === 'cancelled') && <p className="error">The run {run.status === 'failed' ? 'failed' : 'was cancelled'}{run.error ? `: ${run.error}` : '.'}</p>}
          <div className="app-outputs">
            {run.outputs.map((output) => (
              <figure key={output.key} data-testid="app-output" data-state={output.state}>
                <figcaption>{output.label}</figcaption>
                <OutputValue value={output.value} withToken={withToken} label={output.label} />
                {output.error && <p className="error small">{output.error}</p>}
              </figure>
            ))}
          </div>
        </section>
      )}
      {error && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </main>
  )
}

function Field({
  field,
  value,
  disabled,
  onChange,
  onUpload,
}: {
  field: AppInputField
  value: FieldValue
  disabled: boolean
  onChange: (value: FieldValue) => void
  onUpload: (file: File | undefined) => void
}) {
  const id = `app-field-${field.key}`
  const common = { id, 'aria-label': field.label, 'data-testid': id, disabled }
  let control
  if (field.asset) {
    control = <input {...common} type="file" accept="image/png" onChange={(e) => onUpload(e.target.files?.[0])} />
  } else if (field.allowed && field.allowed.length > 0) {
    control = (
      <select {...common} value={String(value ?? '')} onChange={(e) => onChange(field.allowed?.find((a) => String(a) === e.target.value) as FieldValue)}>
        {field.allowed.map((option) => (
          <option key={String(option)} value={String(option)}>
            {String(option)}
          </option>
        ))}
      </select>
    )
  } else if (field.type === 'boolean') {
    control = <input {...common} type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} />
  } else if (field.type === 'number' || field.type === 'integer') {
    control = (
      <input
        {...common}
        type="number"
        step={field.type === 'integer' ? 1 : 'any'}
        min={field.min ?? undefined}
        max={field.max ?? undefined}
        value={value === null ? '' : String(value)}
        onChange={(e) => onChange(valueOf(field, e.target.value))}
      />
    )
  } else if (field.maxLength !== null && field.maxLength <= 200) {
    control = <input {...common} maxLength={field.maxLength} value={String(value ?? '')} onChange={(e) => onChange(e.target.value)} />
  } else {
    control = <textarea {...common} rows={3} maxLength={field.maxLength ?? undefined} value={String(value ?? '')} onChange={(e) => onChange(e.target.value)} />
  }
  return (
    <label htmlFor={id} className="app-field">
      <span>
        {field.label}
        {field.required ? ' *' : ''}
      </span>
      {control}
    </label>
  )
}

function OutputValue({ value, withToken, label }: { value: unknown; withToken: (url: string) => string; label: string }) {
  if (!value || typeof value !== 'object') return <p className="small">Not ready yet.</p>
  const v = value as { kind?: string; url?: string; text?: string; value?: number; asset?: { contentType?: string } }
  if (v.kind === 'asset' && v.url) {
    if (v.asset?.contentType?.startsWith('image/')) return <img src={withToken(v.url)} alt={label} data-testid="app-output-image" />
    return (
      <a href={withToken(v.url)} download>
        Download
      </a>
    )
  }
  if (v.kind === 'text') return <pre className="app-text">{v.text}</pre>
  if (v.kind === 'number') return <p>{v.value}</p>
  return null
}
