// A text area bound to a shared text parameter (doc/sharedText.ts). The document is the only
// copy: each input is written as the change it made (an insertion or a deletion at a place),
// and each change from anyone else (or from Undo) is put into the field as it arrives, with this
// person's caret moved exactly by the text's change (the Yjs event's delta), so two people can
// type into one prompt at once and each keeps typing after their own characters.
// (Uncontrolled on purpose: React re-setting the value would move the caret to the end.)
import { useEffect, useRef, type TextareaHTMLAttributes } from 'react'
import * as Y from 'yjs'
import { editText, moveCaret, moveCaretByDelta, paramValue, readText, textChange } from '../doc/sharedText'

interface Props extends Omit<TextareaHTMLAttributes<HTMLTextAreaElement>, 'value' | 'defaultValue' | 'onChange'> {
  doc: Y.Doc
  nodeId: string
  name: string
}

export function SharedTextArea({ doc, nodeId, name, ...rest }: Props) {
  const field = useRef<HTMLTextAreaElement>(null)

  useEffect(() => {
    const element = field.current
    if (!element) return
    /** Shows `text`, the caret moved by `move` when the field has focus. */
    const show = (text: string, move: (caret: number) => number) => {
      if (element.value === text) return
      const focused = document.activeElement === element
      const { selectionStart, selectionEnd } = element
      element.value = text
      if (focused) element.setSelectionRange(move(selectionStart), move(selectionEnd))
    }
    let observed: Y.Text | null = null
    const onText = (event: Y.YTextEvent) => {
      if (observed) show(observed.toString(), (caret) => moveCaretByDelta(caret, event.delta))
    }
    // After every transaction: follow the parameter's Y.Text (it appears on the first edit of an
    // older document, and is replaced when someone sets the whole value), and show a value that
    // changed without a text event (a plain string, a replaced text) by the difference.
    const follow = () => {
      const value = paramValue(doc, nodeId, name)
      const text = value instanceof Y.Text ? value : null
      if (text !== observed) {
        observed?.unobserve(onText)
        observed = text
        observed?.observe(onText)
      }
      const current = readText(doc, nodeId, name)
      const change = textChange(element.value, current)
      show(current, (caret) => moveCaret(caret, change))
    }
    element.value = readText(doc, nodeId, name)
    follow()
    doc.on('afterTransaction', follow)
    return () => {
      doc.off('afterTransaction', follow)
      observed?.unobserve(onText)
    }
  }, [doc, nodeId, name])

  return (
    <textarea
      ref={field}
      {...rest}
      onInput={(event) => {
        if (rest.readOnly || rest.disabled) return
        editText(doc, nodeId, name, event.currentTarget.value, event.currentTarget.selectionEnd)
      }}
    />
  )
}
