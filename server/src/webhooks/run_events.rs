//! `run.finished` and `node.finished`, reported by the run store itself: every place that ends
//! a node or a run in this process (the in-process workers' driver, cancellation from the API)
//! goes through the store the executor was given, so wrapping it catches them all without the
//! executor knowing about webhooks. Only what a call really changed is reported: a settlement
//! of a node already final returns `false`, and a run already final before the call keeps its
//! old `finished_at`.

use std::sync::Arc;

use dojo_ids::{AssetId, BatchId, NodeId, RunId, UserId};
use dojo_records::{
    AccountError, AssetLink, AssetRecord, Batch, BatchSubmission, Claim, FinishedNode, NewBatch, NewRun,
    NodeSettlement, OutboxEntry, Run, RunGauges, RunNode, RunNodeState, RunStatus, RunStore, Submission,
};

use super::{Trigger, Webhooks};

pub(crate) struct RunEvents {
    inner: Arc<dyn RunStore>,
    webhooks: Webhooks,
}

impl RunEvents {
    pub(crate) fn wrap(inner: Arc<dyn RunStore>, webhooks: Webhooks) -> Arc<dyn RunStore> {
        Arc::new(Self { inner, webhooks })
    }

    /// Reports the run if this call finished it (it was final already otherwise).
    fn finished(&self, run: &Run, called_at: i64) {
        if run.status.is_final() && run.finished_at.is_some_and(|at| at >= called_at) {
            self.webhooks.emit(Trigger::RunFinished { run_id: run.id.clone() });
        }
    }
}

fn now_millis() -> i64 {
    dojo_executor::worker::now_millis()
}

#[async_trait::async_trait]
impl RunStore for RunEvents {
    async fn create_run(&self, run: NewRun) -> Result<Submission, AccountError> {
        self.inner.create_run(run).await
    }

    async fn run(&self, id: &RunId) -> Result<Option<Run>, AccountError> {
        self.inner.run(id).await
    }

    async fn run_nodes(&self, id: &RunId) -> Result<Vec<RunNode>, AccountError> {
        self.inner.run_nodes(id).await
    }

    async fn account_blocked(&self, user: &UserId) -> Result<bool, AccountError> {
        self.inner.account_blocked(user).await
    }

    async fn list_runs(&self, room: &str, limit: u32) -> Result<Vec<Run>, AccountError> {
        self.inner.list_runs(room, limit).await
    }

    async fn create_batch(&self, batch: NewBatch) -> Result<BatchSubmission, AccountError> {
        self.inner.create_batch(batch).await
    }

    async fn batch(&self, id: &BatchId) -> Result<Option<Batch>, AccountError> {
        self.inner.batch(id).await
    }

    async fn batch_runs(&self, id: &BatchId) -> Result<Vec<Run>, AccountError> {
        self.inner.batch_runs(id).await
    }

    async fn list_batches(&self, room: &str, limit: u32) -> Result<Vec<Batch>, AccountError> {
        self.inner.list_batches(room, limit).await
    }

    async fn claim_run(
        &self,
        id: &RunId,
        worker: &str,
        lease_ms: i64,
        per_user_limit: Option<u32>,
    ) -> Result<Claim, AccountError> {
        self.inner.claim_run(id, worker, lease_ms, per_user_limit).await
    }

    async fn claim_run_in_turn(
        &self,
        id: &RunId,
        worker: &str,
        lease_ms: i64,
        per_user_limit: Option<u32>,
    ) -> Result<Claim, AccountError> {
        self.inner.claim_run_in_turn(id, worker, lease_ms, per_user_limit).await
    }

    async fn renew_lease(&self, id: &RunId, worker: &str, lease_ms: i64) -> Result<bool, AccountError> {
        self.inner.renew_lease(id, worker, lease_ms).await
    }

    async fn orphaned_runs(&self, older_than: i64, limit: u32) -> Result<Vec<Run>, AccountError> {
        self.inner.orphaned_runs(older_than, limit).await
    }

    async fn mark_node(
        &self,
        run_id: &RunId,
        node_id: &NodeId,
        state: RunNodeState,
    ) -> Result<(), AccountError> {
        self.inner.mark_node(run_id, node_id, state).await
    }

    async fn settle_node(
        &self,
        run_id: &RunId,
        node_id: &NodeId,
        settlement: NodeSettlement,
    ) -> Result<bool, AccountError> {
        let settled = self.inner.settle_node(run_id, node_id, settlement).await?;
        if settled {
            self.webhooks.emit(Trigger::NodeFinished { run_id: run_id.clone(), node_id: node_id.clone() });
        }
        Ok(settled)
    }

    async fn finish_run(
        &self,
        id: &RunId,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<Run, AccountError> {
        let called_at = now_millis();
        let run = self.inner.finish_run(id, status, error).await?;
        self.finished(&run, called_at);
        Ok(run)
    }

    async fn request_cancel(&self, id: &RunId) -> Result<Option<Run>, AccountError> {
        let called_at = now_millis();
        let run = self.inner.request_cancel(id).await?;
        if let Some(run) = &run {
            self.finished(run, called_at);
        }
        Ok(run)
    }

    async fn expire_holds(&self, now: i64) -> Result<u64, AccountError> {
        self.inner.expire_holds(now).await
    }

    async fn run_gauges(&self, now: i64) -> Result<RunGauges, AccountError> {
        self.inner.run_gauges(now).await
    }

    async fn finished_runs_since(&self, since: i64, limit: u32) -> Result<Vec<Run>, AccountError> {
        self.inner.finished_runs_since(since, limit).await
    }

    async fn finished_nodes_since(&self, since: i64, limit: u32) -> Result<Vec<FinishedNode>, AccountError> {
        self.inner.finished_nodes_since(since, limit).await
    }

    async fn outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>, AccountError> {
        self.inner.outbox(limit).await
    }

    async fn delete_outbox(&self, ids: &[i64]) -> Result<(), AccountError> {
        self.inner.delete_outbox(ids).await
    }

    async fn record_asset(&self, asset: &AssetRecord, link: &AssetLink) -> Result<(), AccountError> {
        self.inner.record_asset(asset, link).await
    }

    async fn record_upload(
        &self,
        asset: &AssetRecord,
        link: &AssetLink,
        quota: i64,
    ) -> Result<(), AccountError> {
        self.inner.record_upload(asset, link, quota).await
    }

    async fn storage_used(&self, owner_id: &UserId) -> Result<i64, AccountError> {
        self.inner.storage_used(owner_id).await
    }

    async fn asset(&self, id: &AssetId) -> Result<Option<AssetRecord>, AccountError> {
        self.inner.asset(id).await
    }

    async fn asset_links(&self, id: &AssetId, limit: u32) -> Result<Vec<AssetLink>, AccountError> {
        self.inner.asset_links(id, limit).await
    }

    async fn cached_outputs(&self, scope: &str, key: &str) -> Result<Option<String>, AccountError> {
        self.inner.cached_outputs(scope, key).await
    }

    async fn cache_outputs(&self, scope: &str, key: &str, outputs: &str) -> Result<(), AccountError> {
        self.inner.cache_outputs(scope, key, outputs).await
    }

    async fn prune_cache(&self, older_than: i64) -> Result<u64, AccountError> {
        self.inner.prune_cache(older_than).await
    }
}
