// The dashboard's lists in one workspace. Personal: the workflows I own, and the ones others
// shared with me, that belong to no team. A team: that team's workflows (GET /api/workflows
// returns all of them, with my permission, each workflow's owner and team).
import type { Workflow } from '../api/client'

export interface WorkflowGroups {
  mine: Workflow[]
  sharedWithMe: Workflow[]
}

/** `workspace`: a team id, or '' for personal. */
export function groupWorkflows(workflows: Workflow[], myId: string, workspace = ''): WorkflowGroups {
  if (workspace) return { mine: workflows.filter((workflow) => workflow.teamId === workspace), sharedWithMe: [] }
  const personal = workflows.filter((workflow) => !workflow.teamId)
  return {
    mine: personal.filter((workflow) => workflow.ownerId === myId),
    sharedWithMe: personal.filter((workflow) => workflow.ownerId !== myId),
  }
}
