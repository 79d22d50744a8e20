-- App mode (issue 23): a workflow published as a form. Owned by dojo-records (`AppStore`).
-- Expand-only: one new table.
--
-- One app per workflow (republishing replaces it, keeping its id and so its link). The graph
-- is a snapshot taken at publish time, so later edits of the canvas do not change what runners
-- run until the owner publishes again.
CREATE TABLE workflow_apps (
    id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL UNIQUE REFERENCES workflows (id) ON DELETE CASCADE,
    -- Who published it (the owner, or a team owner or admin); their account's deletion
    -- unpublishes it.
    published_by TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    -- private: those who may read the workflow; link: any signed-in user with the link;
    -- team: members of the workflow's team.
    visibility TEXT NOT NULL CHECK (visibility IN ('private', 'link', 'team')),
    -- JSON: {"inputs": [{"key", "node", "param", "label"}], "outputs": [{"key", "node", "output", "label"}]}.
    form TEXT NOT NULL,
    -- JSON: the canvas graph (nodes, edges) as published.
    graph TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX workflow_apps_published_by ON workflow_apps (published_by);
