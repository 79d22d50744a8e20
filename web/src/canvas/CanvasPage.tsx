// A workflow's canvas: loads the workflow (room, permission) and the catalog, opens the live
// connection to the room, and hands them to the editor. Explains what went wrong otherwise.
import { ReactFlowProvider } from '@xyflow/react'
import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from 'react'
import { api, type Workflow } from '../api/client'
import { ApiError, NetworkError } from '../api/http'
import { renewToken, type Session } from '../auth/session'
import { CatalogIndex } from '../catalog/catalog'
import { localStoreName, RoomConnection, type AccessVerdict } from '../collab/connection'
import { whenServiceWorkerTakesOver } from '../offline/apiCache'
import { describeError } from '../ui/errors'
import { navigate } from '../ui/router'
import type { Theme } from '../ui/theme'
import { CanvasBinding } from '../doc/binding'
import { createUndoManager } from '../doc/edits'
import { CanvasEditor, type OpenRoom } from './CanvasEditor'

interface Props {
  workflowId: string
  session: Session
  onSession: (session: Session) => void
  theme: Theme
  onToggleTheme: () => void
}

export function CanvasPage({ workflowId, session, onSession, theme, onToggleTheme }: Props) {
  const [workflow, setWorkflow] = useState<Workflow | null>(null)
  const [catalog, setCatalog] = useState<CatalogIndex | null>(null)
  const [problem, setProblem] = useState<string | null>(null)
  const [credits, setCredits] = useState(session.me.credits)
  const sessionRef = useRef(session)
  sessionRef.current = session

  const renew = useCallback(async () => {
    const token = await renewToken(sessionRef.current.devMode)
    if (token) onSession({ ...sessionRef.current, token })
    return token
  }, [onSession])

  const loadWorkflow = useCallback(async () => {
    try {
      setWorkflow(await api.workflow(sessionRef.current.token, workflowId))
      setProblem(null)
    } catch (error) {
      if (error instanceof ApiError && error.status === 401 && (await renew())) return loadWorkflow()
      setProblem(
        error instanceof ApiError && error.status === 404
          ? 'This workflow does not exist, or it is not shared with you.'
          : describeError(error),
      )
    }
  }, [workflowId, renew])

  useEffect(() => {
    void loadWorkflow()
    api
      .catalog()
      .then((catalog) => setCatalog(new CatalogIndex(catalog)))
      .catch((error: unknown) => setProblem(`The node catalog did not load: ${describeError(error)}`))
  }, [loadWorkflow])

  // Read again through the service worker that just took over, so it has what opening this
  // canvas offline needs.
  useEffect(
    () =>
      whenServiceWorkerTakesOver(() => {
        const token = sessionRef.current.token
        void Promise.allSettled([api.me(token), api.catalog(), api.workflow(token, workflowId)])
      }),
    [workflowId],
  )

  const refreshCredits = useCallback(() => {
    api
      .me(sessionRef.current.token)
      .then((me) => setCredits(me.credits))
      .catch(() => undefined)
  }, [])

  const room = workflow?.room ?? null
  // Created and destroyed together with the room's connection (effects, not render: React's
  // strict mode runs effects twice in development, and each run gets fresh objects).
  const [openRoom, setOpenRoom] = useState<OpenRoom | null>(null)
  const connection = openRoom?.connection ?? null
  useEffect(() => {
    if (!room) return
    const checkAccess = async (): Promise<AccessVerdict> => {
      try {
        await api.workflow(sessionRef.current.token, workflowId)
        return 'ok'
      } catch (error) {
        if (error instanceof NetworkError) return 'unreachable'
        if (error instanceof ApiError && error.status === 401) return 'expired'
        if (error instanceof ApiError && (error.status === 404 || error.status === 403)) return 'denied'
        return 'unreachable'
      }
    }
    const connection = new RoomConnection({
      room,
      token: sessionRef.current.token,
      renewToken: renew,
      checkAccess,
      localStore: localStoreName(sessionRef.current.me.id, room),
    })
    const binding = new CanvasBinding(connection.doc)
    const undo = createUndoManager(connection.doc)
    setOpenRoom({ connection, binding, undo })
    return () => {
      undo.destroy()
      binding.destroy()
      connection.destroy()
      setOpenRoom(null)
    }
  }, [room, workflowId, renew])

  // Permissions may have changed while we were away (1012): ask again on every reconnect.
  const state = useSyncExternalStore(
    connection?.subscribe ?? noSubscribe,
    connection?.getState ?? connectingState,
  )
  const wasOnline = useRef(false)
  useEffect(() => {
    const online = state.kind === 'online'
    if (online && !wasOnline.current && workflow) void loadWorkflow()
    wasOnline.current = online
  }, [state.kind])

  if (problem) {
    return (
      <div className="splash" role="alert" data-testid="canvas-problem">
        <p>{problem}</p>
        <button onClick={() => navigate('/')}>Back to workflows</button>
      </div>
    )
  }
  if (!workflow || !catalog || !openRoom) return <div className="splash">Opening the canvas…</div>
  return (
    <ReactFlowProvider>
      <CanvasEditor
        workflow={workflow}
        catalog={catalog}
        room={openRoom}
        session={session}
        credits={credits}
        onRunsFinished={refreshCredits}
        theme={theme}
        onToggleTheme={onToggleTheme}
      />
    </ReactFlowProvider>
  )
}

const noSubscribe = () => () => undefined
const CONNECTING = { kind: 'connecting' } as const
const connectingState = () => CONNECTING
