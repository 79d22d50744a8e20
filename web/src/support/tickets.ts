// How a support ticket's status reads to the person who asked: they never see the agent's
// draft, so "drafted" is still waiting for them.
export function ticketStatusLabel(status: string): string {
  switch (status) {
    case 'answered':
      return 'answered'
    case 'open':
    case 'drafted':
      return 'waiting for our team'
    default:
      return status
  }
}
