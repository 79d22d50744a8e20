//! Executor settings: part of the one typed configuration (`crate::config::Config`, flattened),
//! in a file of their own to keep `config.rs` readable.

/// How runs of canvas graphs execute inside this process.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecutorSettings {
    /// Where generated and uploaded assets are stored (content-addressed files).
    #[arg(long, env = "DOJO_ASSETS_DIR", default_value = "data/assets")]
    pub assets_dir: std::path::PathBuf,

    /// Assets in an object store instead of the directory: `s3://bucket/prefix` (S3 or an
    /// S3-compatible service; credentials, region and endpoint from the standard `AWS_*`
    /// variables, e.g. `AWS_ENDPOINT` for MinIO). Every server and worker must use the same.
    #[arg(long, env = "DOJO_ASSETS_URL")]
    pub assets_url: Option<String>,

    /// Runs this process executes at once (0: accept runs but leave them to other processes).
    #[arg(long, env = "DOJO_RUN_WORKERS", default_value_t = 2)]
    pub run_workers: usize,

    /// Nodes of one run executing at once.
    #[arg(long, env = "DOJO_NODE_CONCURRENCY", default_value_t = 4)]
    pub node_concurrency: usize,

    /// Runs of one user executing at once, counted across every process that executes runs
    /// (0: no limit); more wait in the queue.
    #[arg(long, env = "DOJO_RUNS_PER_USER", default_value_t = 2)]
    pub runs_per_user: usize,

    /// Seconds a worker's claim on a run lasts without renewal; a run whose worker died is
    /// resumed by another after this.
    #[arg(long, env = "DOJO_RUN_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,

    /// With Redis: seconds a run's queue entry may sit idle with a worker before another
    /// worker takes it over (`XAUTOCLAIM`). Longer than the lease, so the lease has run out by
    /// then.
    #[arg(long, env = "DOJO_RUN_VISIBILITY_SECS", default_value_t = 40)]
    pub visibility_secs: u64,

    /// Days an entry of the node cache is kept.
    #[arg(long, env = "DOJO_CACHE_DAYS", default_value_t = 30)]
    pub cache_days: u64,

    /// Provider keys and endpoints; `None`: read from the environment at start-up
    /// (`OPENAI_API_KEY`, `REPLICATE_API_TOKEN`…, see docs/executor.md). Tests set it.
    #[arg(skip)]
    pub providers: Option<dojo_executor::ProviderConfig>,

    /// The OpenAI model the natural-language builder (`POST /api/rooms/{room}/compose`) plans
    /// with; it must support Structured Outputs. Used only when `OPENAI_API_KEY` is set: without
    /// it (and whenever the model fails) the deterministic parser plans.
    #[arg(long, env = "DOJO_COMPOSE_MODEL", default_value = dojo_executor::compose::llm::DEFAULT_MODEL)]
    pub compose_model: String,

    /// Seconds the builder waits for the model's plan before the parser plans instead.
    #[arg(long, env = "DOJO_COMPOSE_TIMEOUT_SECS", default_value_t = 20)]
    pub compose_timeout_secs: u64,

    /// Largest asset upload, in bytes.
    #[arg(long, env = "DOJO_MAX_UPLOAD_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub max_upload_bytes: usize,

    /// Credits a dev identity gets once, in dev mode only (no JWT key), so runs can be tried.
    #[arg(long, env = "DOJO_DEV_CREDITS", default_value_t = 100)]
    pub dev_credits: i64,

    /// Subject of the executor's service tokens (dojo-worker's DOJO_WORKER_SUBJECT): a token
    /// with room grants and this subject may write the `results` and `runs` maps, which every
    /// other client's update is refused for (WebSocket 1007, HTTP 400).
    #[arg(long, env = "DOJO_EXECUTOR_SUBJECT", default_value = "dojo-worker")]
    pub executor_subject: String,
    /// Most pixels (width × height) an uploaded image may have; larger ones are refused (422)
    /// from their header, before decoding. The default is what the built-in image nodes take.
    #[arg(long, env = "DOJO_MAX_IMAGE_PIXELS", default_value_t = 16 * 1024 * 1024)]
    pub max_image_pixels: u64,

    /// Longest side, in pixels, of an uploaded image (422 beyond it).
    #[arg(long, env = "DOJO_MAX_IMAGE_SIDE", default_value_t = 4096)]
    pub max_image_side: u32,

    /// Bytes of assets one user may own (uploads and run outputs, each asset counted once);
    /// an upload past it is refused (413, `storage_quota_exceeded`). 0: no quota.
    #[arg(long, env = "DOJO_USER_STORAGE_BYTES", default_value_t = 1024 * 1024 * 1024)]
    pub user_storage_bytes: u64,
}
