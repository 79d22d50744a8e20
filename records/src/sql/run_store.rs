//! [`RunStore`] for this backend: validation first, then the topic's statements, every write on
//! a task of its own (`run_to_completion`) so that a caller who stops waiting cannot leave a
//! pooled connection inside a transaction.

use dojo_ids::{AssetId, BatchId, NodeId, RunId, UserId};
use dojo_store::run_to_completion;

use super::{Store, assets, batches, finished, gauges, holds, leases, node_cache, outbox, runs};
use crate::AccountError;
use crate::batches::{Batch, BatchSubmission, NewBatch};
use crate::dialect::Dialect;
use crate::run_records::{invalid, validate_asset, validate_id, validate_new_run, validate_settlement};
use crate::runs::{
    AssetLink, AssetRecord, Claim, FinishedNode, MAX_CACHED_OUTPUTS, NewRun, NodeSettlement, OutboxEntry,
    Run, RunGauges, RunNode, RunNodeState, RunStatus, RunStore, Submission,
};

#[async_trait::async_trait]
impl RunStore for Store {
    async fn create_run(&self, run: NewRun) -> Result<Submission, AccountError> {
        let estimate = validate_new_run(&run)?;
        // A retry finds its run without taking any lock.
        if let Some(key) = &run.idempotency_key {
            let mut conn = self.pool().acquire().await?;
            if let Some(existing) = runs::by_key(&mut conn, &run.user_id, key).await? {
                return Ok(Submission::Existing(existing));
            }
        }
        let this = self.clone();
        run_to_completion(async move { runs::create(&this, run, estimate).await }).await
    }

    async fn run(&self, id: &RunId) -> Result<Option<Run>, AccountError> {
        let mut conn = self.pool().acquire().await?;
        runs::by_id(&mut conn, id.as_str()).await
    }

    async fn run_nodes(&self, id: &RunId) -> Result<Vec<RunNode>, AccountError> {
        runs::nodes(self, id.as_str()).await
    }

    async fn account_blocked(&self, user: &UserId) -> Result<bool, AccountError> {
        let mut conn = self.pool().acquire().await?;
        super::fraud::blocked(&mut conn, user).await
    }

    async fn list_runs(&self, room: &str, limit: u32) -> Result<Vec<Run>, AccountError> {
        runs::list(self, room, limit).await
    }

    async fn create_batch(&self, batch: NewBatch) -> Result<BatchSubmission, AccountError> {
        let estimates = batches::validate(&batch)?;
        let this = self.clone();
        run_to_completion(async move { batches::create(&this, batch, estimates).await }).await
    }

    async fn batch(&self, id: &BatchId) -> Result<Option<Batch>, AccountError> {
        let mut conn = self.pool().acquire().await?;
        batches::by_id(&mut conn, id.as_str()).await
    }

    async fn batch_runs(&self, id: &BatchId) -> Result<Vec<Run>, AccountError> {
        let mut conn = self.pool().acquire().await?;
        batches::members(&mut conn, id.as_str()).await
    }

    async fn list_batches(&self, room: &str, limit: u32) -> Result<Vec<Batch>, AccountError> {
        let mut conn = self.pool().acquire().await?;
        batches::list(&mut conn, room, limit).await
    }

    async fn claim_run(
        &self,
        id: &RunId,
        worker: &str,
        lease_ms: i64,
        per_user_limit: Option<u32>,
    ) -> Result<Claim, AccountError> {
        validate_id("worker", worker)?;
        if lease_ms <= 0 {
            return Err(invalid("lease_ms", "not positive"));
        }
        let (this, id, worker) = (self.clone(), id.to_owned(), worker.to_owned());
        run_to_completion(async move {
            leases::claim(&this, id.as_str(), &worker, lease_ms, per_user_limit, false).await
        })
        .await
    }

    async fn claim_run_in_turn(
        &self,
        id: &RunId,
        worker: &str,
        lease_ms: i64,
        per_user_limit: Option<u32>,
    ) -> Result<Claim, AccountError> {
        validate_id("worker", worker)?;
        if lease_ms <= 0 {
            return Err(invalid("lease_ms", "not positive"));
        }
        let (this, id, worker) = (self.clone(), id.to_owned(), worker.to_owned());
        run_to_completion(async move {
            leases::claim(&this, id.as_str(), &worker, lease_ms, per_user_limit, true).await
        })
        .await
    }

    async fn renew_lease(&self, id: &RunId, worker: &str, lease_ms: i64) -> Result<bool, AccountError> {
        if lease_ms <= 0 {
            return Err(invalid("lease_ms", "not positive"));
        }
        let (this, id, worker) = (self.clone(), id.to_owned(), worker.to_owned());
        run_to_completion(async move { leases::renew(&this, id.as_str(), &worker, lease_ms).await }).await
    }

    async fn orphaned_runs(&self, older_than: i64, limit: u32) -> Result<Vec<Run>, AccountError> {
        leases::orphaned(self, older_than, limit).await
    }

    async fn mark_node(
        &self,
        run_id: &RunId,
        node_id: &NodeId,
        state: RunNodeState,
    ) -> Result<(), AccountError> {
        if state.is_final() {
            return Err(invalid("state", "not an active node state"));
        }
        let this = self.clone();
        let (run_id, node_id) = (run_id.to_owned(), node_id.to_owned());
        run_to_completion(
            async move { runs::mark_node(&this, run_id.as_str(), node_id.as_str(), state).await },
        )
        .await
    }

    async fn settle_node(
        &self,
        run_id: &RunId,
        node_id: &NodeId,
        settlement: NodeSettlement,
    ) -> Result<bool, AccountError> {
        validate_settlement(&settlement)?;
        let (this, run_id, node_id) = (self.clone(), run_id.to_owned(), node_id.to_owned());
        run_to_completion(
            async move { holds::settle(&this, run_id.as_str(), node_id.as_str(), settlement).await },
        )
        .await
    }

    async fn finish_run(
        &self,
        id: &RunId,
        status: RunStatus,
        error: Option<&str>,
    ) -> Result<Run, AccountError> {
        if !status.is_final() {
            return Err(invalid("status", "not a final run status"));
        }
        let (this, id, error) = (self.clone(), id.to_owned(), error.map(str::to_owned));
        run_to_completion(async move { runs::finish(&this, id.as_str(), status, error.as_deref()).await })
            .await
    }

    async fn request_cancel(&self, id: &RunId) -> Result<Option<Run>, AccountError> {
        let (this, id) = (self.clone(), id.to_owned());
        run_to_completion(async move { runs::request_cancel(&this, id.as_str()).await }).await
    }

    async fn expire_holds(&self, now: i64) -> Result<u64, AccountError> {
        let this = self.clone();
        run_to_completion(async move { holds::expire(&this, now).await }).await
    }

    async fn run_gauges(&self, now: i64) -> Result<RunGauges, AccountError> {
        gauges::read(self, now).await
    }

    async fn finished_runs_since(&self, since: i64, limit: u32) -> Result<Vec<Run>, AccountError> {
        finished::runs_since(self, since, limit).await
    }

    async fn finished_nodes_since(&self, since: i64, limit: u32) -> Result<Vec<FinishedNode>, AccountError> {
        finished::nodes_since(self, since, limit).await
    }

    async fn outbox(&self, limit: u32) -> Result<Vec<OutboxEntry>, AccountError> {
        outbox::pending(self, limit).await
    }

    async fn delete_outbox(&self, ids: &[i64]) -> Result<(), AccountError> {
        if ids.is_empty() {
            return Ok(());
        }
        let (this, ids) = (self.clone(), ids.to_vec());
        run_to_completion(async move { outbox::delete(&this, ids).await }).await
    }

    async fn record_asset(&self, asset: &AssetRecord, link: &AssetLink) -> Result<(), AccountError> {
        validate_asset(asset, link)?;
        let (this, asset, link) = (self.clone(), asset.clone(), link.clone());
        run_to_completion(async move { assets::record(&this, &asset, &link).await }).await
    }

    async fn record_upload(
        &self,
        asset: &AssetRecord,
        link: &AssetLink,
        quota: i64,
    ) -> Result<(), AccountError> {
        validate_asset(asset, link)?;
        let (this, asset, link) = (self.clone(), asset.clone(), link.clone());
        run_to_completion(async move { assets::record_upload(&this, &asset, &link, quota).await }).await
    }

    async fn storage_used(&self, owner_id: &UserId) -> Result<i64, AccountError> {
        assets::storage_used(self, owner_id.as_str()).await
    }

    async fn asset(&self, id: &AssetId) -> Result<Option<AssetRecord>, AccountError> {
        assets::by_id(self, id.as_str()).await
    }

    async fn asset_links(&self, id: &AssetId, limit: u32) -> Result<Vec<AssetLink>, AccountError> {
        assets::links(self, id.as_str(), limit).await
    }

    async fn cached_outputs(&self, scope: &str, key: &str) -> Result<Option<String>, AccountError> {
        node_cache::get(self, scope, key).await
    }

    async fn cache_outputs(&self, scope: &str, key: &str, outputs: &str) -> Result<(), AccountError> {
        validate_id("scope", scope)?;
        validate_id("key", key)?;
        if outputs.len() > MAX_CACHED_OUTPUTS {
            return Err(invalid("outputs", "too large to cache"));
        }
        let (this, scope, key, outputs) =
            (self.clone(), scope.to_owned(), key.to_owned(), outputs.to_owned());
        run_to_completion(async move { node_cache::put(&this, &scope, &key, &outputs).await }).await
    }

    async fn prune_cache(&self, older_than: i64) -> Result<u64, AccountError> {
        let this = self.clone();
        run_to_completion(async move { node_cache::prune(&this, older_than).await }).await
    }
}
