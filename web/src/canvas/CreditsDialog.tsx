import { credits } from '../ui/credits'
import type { CreditShortfall } from './useRuns'

/** A run refused for lack of credits (402): what it costs, what the user has. */
export function CreditsDialog({ shortfall, onClose }: { shortfall: CreditShortfall; onClose: () => void }) {
  return (
    <div className="modal-backdrop" onClick={onClose}>
      <div className="modal" role="alertdialog" aria-label="Not enough credits" data-testid="credits-dialog" onClick={(e) => e.stopPropagation()}>
        <h2>Not enough credits</h2>
        <p>
          This run can cost up to <strong>{credits(shortfall.cost)}</strong>, and your balance is{' '}
          <strong>{credits(shortfall.balance)}</strong>. Credits are held when a run starts and only what actually runs is charged
          (cached results are free).
        </p>
        <p className="muted small">
          Run fewer nodes (select one and use “Run selected”), swap in cheaper models, or buy credits. The server said: “
          {shortfall.message}”
        </p>
        <button onClick={onClose} autoFocus>
          OK
        </button>
      </div>
    </div>
  )
}
