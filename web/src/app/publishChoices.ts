// What the publish dialog keeps of the owner's choices, and the form page's value handling:
// pure, so they are tested without a browser.
import type { AppInputField, PublishedApp } from '../api/client'

/** A chosen parameter (an input) or output of a node, with the label runners see. */
export interface Choice {
  node: string
  name: string
  label: string
}

export const choiceKey = (choice: Pick<Choice, 'node' | 'name'>) => `${choice.node}.${choice.name}`

/** The editor's address of an app's form. */
export const appLink = (id: string) => `/app/${encodeURIComponent(id)}`

/** The choices of an app as published, keyed like the dialog keeps them. */
export function initialChoices(app: Pick<PublishedApp, 'inputs' | 'outputs'>): {
  inputs: Map<string, Choice>
  outputs: Map<string, Choice>
} {
  const inputs = new Map<string, Choice>()
  for (const input of app.inputs) inputs.set(choiceKey({ node: input.node, name: input.param }), { node: input.node, name: input.param, label: input.label })
  const outputs = new Map<string, Choice>()
  for (const output of app.outputs)
    outputs.set(choiceKey({ node: output.node, name: output.output }), { node: output.node, name: output.output, label: output.label })
  return { inputs, outputs }
}

export type FieldValue = string | number | boolean | null

/** What the form starts with: each field's default (the value published on the canvas). */
export function initialValues(fields: AppInputField[]): Record<string, FieldValue> {
  const values: Record<string, FieldValue> = {}
  for (const field of fields) {
    const value = field.default
    values[field.key] = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? value : null
  }
  return values
}

/**
 * A field's text as the value the server expects: numbers parsed (left as text when they do not
 * parse, so the server names the field), empty optional text as null (the published default).
 */
export function valueOf(field: Pick<AppInputField, 'type'>, text: string): FieldValue {
  if (field.type === 'number' || field.type === 'integer') {
    if (text.trim() === '') return null
    const n = Number(text)
    return Number.isFinite(n) ? n : text
  }
  return text
}
