// Costs and balances are credits, not money: "1 credit", "6 credits" (never "6¢").

export function credits(amount: number): string {
  return `${amount} credit${amount === 1 ? '' : 's'}`
}
