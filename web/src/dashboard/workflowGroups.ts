// The dashboard's two lists: the workflows I own, and the ones others shared with me
// (GET /api/workflows returns both, with my permission and each workflow's owner).
import type { Workflow } from '../api/client'

export interface WorkflowGroups {
  mine: Workflow[]
  sharedWithMe: Workflow[]
}

export function groupWorkflows(workflows: Workflow[], myId: string): WorkflowGroups {
  return {
    mine: workflows.filter((workflow) => workflow.ownerId === myId),
    sharedWithMe: workflows.filter((workflow) => workflow.ownerId !== myId),
  }
}
