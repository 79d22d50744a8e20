//! The real `dojo-worker` binary (the executor crate's) as a child process: it takes runs from
//! Redis, joins rooms over the WebSocket protocol and can be killed with SIGKILL mid-run.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command};

use super::process::{Started, read_log};

/// Built next to this test binary by `cargo build --workspace` / `cargo nextest run
/// --workspace` (the executor package's binary; `CARGO_BIN_EXE_*` only names a package's own).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/<test> → target/debug/dojo-worker
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let path = dir.join("dojo-worker");
    assert!(path.exists(), "{} is missing: cargo build -p dojo-executor --bin dojo-worker", path.display());
    path
}

pub struct WorkerProcess {
    /// The name it registered with the queue under.
    pub name: String,
    child: Child,
    _stdout: BufReader<ChildStdout>,
    log: tempfile::NamedTempFile,
}

impl WorkerProcess {
    /// Starts a worker with `env` (DATABASE_URL, REDIS_URL, DOJO_SERVER_URL, …) and waits for
    /// its "ready" line.
    pub async fn start(env: &[(&str, String)]) -> Self {
        let mut command = Command::new(binary());
        command.env("DOJO_LOG", "info").envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let started = Started::spawn(command, "dojo-worker").await;
        let Some(name) = started.line.trim().strip_prefix("dojo-worker ready as ").map(str::to_owned) else {
            started.fail("an unexpected first line");
        };
        Self { name, child: started.child, _stdout: started.stdout, log: started.log }
    }

    /// SIGKILL: no shutdown code runs, the run it holds is left mid-way.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the worker");
        self.child.wait().expect("reap the worker");
    }

    /// SIGTERM (the graceful stop: no new runs, a grace period for those in flight, the rest
    /// handed back), then waits for the process to exit; SIGKILL if it has not within `WAIT`.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill(1)");
        assert!(sent.success(), "SIGTERM the worker");
        let deadline = tokio::time::Instant::now() + super::WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("the worker's status") {
                return status;
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the worker did not exit within {:?} of SIGTERM:\n{}", super::WAIT, self.log());
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
