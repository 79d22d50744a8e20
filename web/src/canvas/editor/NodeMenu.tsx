// The context menu of a node. Right-clicking an unselected node selects it first, so Duplicate
// takes the selection; Delete takes the selection only when it holds the node, else the node.
import type { CanvasBinding } from '../../doc/binding'
import { ContextMenu, type MenuTarget } from '../ContextMenu'
import type { EditActions } from './useEditActions'

interface Props {
  target: MenuTarget
  readOnly: boolean
  binding: CanvasBinding
  actions: EditActions
  openSettings: () => void
  onClose: () => void
}

export function NodeMenu({ target, readOnly, binding, actions, openSettings, onClose }: Props) {
  return (
    <ContextMenu
      target={target}
      readOnly={readOnly}
      onDuplicate={() => actions.duplicate(binding.selectedNodeIds().length > 0 ? binding.selectedNodeIds() : [target.nodeId])}
      onDelete={() => actions.remove(binding.selectedNodeIds().includes(target.nodeId) ? binding.selectedNodeIds() : [target.nodeId])}
      onSettings={() => {
        binding.select([target.nodeId])
        openSettings()
      }}
      onRunHere={() => actions.run([target.nodeId])}
      onRunFrom={() => actions.runFrom(target.nodeId)}
      onClose={onClose}
    />
  )
}
