// The providers a team can store a key for: the server's list (records/src/provider_keys.rs,
// `ProviderName`), in the order the provider-keys screen shows them.
export const PROVIDERS = ['openai', 'replicate', 'fal', 'stability'] as const

const LABELS: Record<string, string> = {
  openai: 'OpenAI',
  replicate: 'Replicate',
  fal: 'fal',
  stability: 'Stability AI',
}

export function providerLabel(provider: string): string {
  return LABELS[provider] ?? provider
}

/** How a stored key is shown: its last four characters behind a mask (a key of eight characters
 * or fewer comes back with none, so it is all mask). */
export function maskedKey(lastFour: string): string {
  return lastFour ? `••••${lastFour}` : '••••••••'
}
