// The editor's top bar: back to the dashboard, title, connection and people, credits, and the
// undo, run, settings, tidy-up, run history, versions, share, theme and help buttons.
import type { ConnectionState } from '../../collab/connection'
import type { Peer, PresenceUser } from '../../collab/presence'
import { navigate } from '../../ui/router'
import type { Theme } from '../../ui/theme'
import { ConnectionBadge } from '../ConnectionBadge'
import { Avatars } from '../Presence'
import type { RunsState } from '../useRuns'
import type { UndoState } from './useUndoState'

interface Props {
  title: string
  connectionState: ConnectionState
  me: PresenceUser
  peers: Peer[]
  credits: number
  readOnly: boolean
  undoState: UndoState
  onUndo: () => void
  onRedo: () => void
  runs: RunsState
  /** Nodes on the canvas and the ones selected: what Run and Run selected would run. */
  nodeCount: number
  selectedIds: string[]
  onRun: (targets: string[] | null) => void
  historyOpen: boolean
  onToggleHistory: () => void
  versionsOpen: boolean
  onToggleVersions: () => void
  /** Arranges the canvas along its wires (one undoable change). */
  onAutoLayout: () => void
  /** The selected node's parameter panel (one node selected). */
  settingsOpen: boolean
  onToggleSettings: () => void
  theme: Theme
  onToggleTheme: () => void
  onToggleHelp: () => void
  onShare: () => void
  /** Absent when the caller may not publish (only the owner, or a team owner or admin, may). */
  onPublishApp?: () => void
  onAskForHelp: () => void
}

export function Toolbar(props: Props) {
  const { connectionState, readOnly, undoState, runs, selectedIds, onRun } = props
  return (
    <header className="topbar">
      <button className="link" onClick={() => navigate('/')} title="All workflows">
        ← Workflows
      </button>
      <h1 className="workflow-title">{props.title}</h1>
      <ConnectionBadge state={connectionState} />
      <Avatars me={props.me} peers={props.peers} disconnected={connectionState.kind !== 'online'} />
      <span className="spacer" />
      <span className="credits" data-testid="credits" title="Your credit balance">
        {props.credits} credits
      </span>
      <button onClick={props.onUndo} disabled={!undoState.canUndo || readOnly} title="Undo your last change (Ctrl+Z)">
        Undo
      </button>
      <button onClick={props.onRedo} disabled={!undoState.canRedo || readOnly} title="Redo (Ctrl+Shift+Z)">
        Redo
      </button>
      <button className="primary" data-testid="run" onClick={() => onRun(null)} disabled={readOnly || runs.starting || props.nodeCount === 0}>
        Run
      </button>
      <button onClick={() => onRun(selectedIds)} disabled={readOnly || runs.starting || selectedIds.length === 0} title="Run the selected nodes and what they need">
        Run selected
      </button>
      <button data-testid="cancel" onClick={() => void runs.cancel()} disabled={readOnly || runs.active.length === 0}>
        Cancel
      </button>
      <button
        onClick={props.onToggleSettings}
        aria-pressed={props.settingsOpen}
        disabled={selectedIds.length !== 1}
        data-testid="settings-toggle"
        title="The selected node's settings (or double-click a node)"
      >
        Settings
      </button>
      <button
        onClick={props.onAutoLayout}
        disabled={readOnly || props.nodeCount === 0}
        data-testid="auto-layout"
        title="Arrange the nodes left to right along their wires (Undo takes it back)"
      >
        Tidy up
      </button>
      <button onClick={props.onToggleHistory} aria-pressed={props.historyOpen}>
        Runs
      </button>
      <button onClick={props.onToggleVersions} aria-pressed={props.versionsOpen} data-testid="versions-toggle" title="Stored versions: preview and restore">
        Versions
      </button>
      <button onClick={props.onShare} data-testid="share" title="Invite people, copy the link">
        Share
      </button>
      {props.onPublishApp && (
        <button onClick={props.onPublishApp} data-testid="publish-app-open" title="Publish this canvas as a form others run with their own credits">
          Publish as app
        </button>
      )}
      <button onClick={props.onToggleTheme} title="Switch theme" data-testid="theme-toggle">
        {props.theme === 'dark' ? '☀' : '☾'}
      </button>
      <button onClick={props.onAskForHelp} data-testid="ask-for-help" title="Ask our team for help with this canvas">
        Help
      </button>
      <button onClick={props.onToggleHelp} title="Keyboard shortcuts">
        ?
      </button>
    </header>
  )
}
