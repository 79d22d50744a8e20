//! The real `dojo-server` binary as a child process, for stories about the process itself:
//! killed with SIGKILL mid-burst, or refusing to start.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};

use super::WAIT;

pub const BINARY: &str = env!("CARGO_BIN_EXE_dojo-server");

pub struct ServerProcess {
    pub addr: SocketAddr,
    child: Child,
    /// Kept open: the server's stdout is a pipe.
    _stdout: BufReader<ChildStdout>,
    /// The server's stderr (its logs), for failure messages.
    log: tempfile::NamedTempFile,
}

impl ServerProcess {
    /// Starts the binary on an ephemeral port storing at `database_url`, and waits for its
    /// "listening" line.
    pub async fn start(database_url: &str, extra_args: &[&str]) -> Self {
        Self::start_with_env(database_url, extra_args, &[]).await
    }

    /// Like [`start`](Self::start), with more environment variables (provider settings).
    pub async fn start_with_env(database_url: &str, extra_args: &[&str], env: &[(&str, String)]) -> Self {
        Self::start_binary(std::path::Path::new(BINARY), database_url, extra_args, env).await
    }

    /// Like [`start_with_env`](Self::start_with_env), with another build of `dojo-server` (the
    /// previous release, in the upgrade tests).
    pub async fn start_binary(
        binary: &std::path::Path,
        database_url: &str,
        extra_args: &[&str],
        env: &[(&str, String)],
    ) -> Self {
        let mut command = Command::new(binary);
        command
            .args(["--addr", "127.0.0.1:0", "--database-url", database_url, "--log", "warn"])
            .args(extra_args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let started = Started::spawn(command, "dojo-server").await;
        let Some(addr) =
            started.line.trim().strip_prefix("dojo-server listening on ").and_then(|a| a.parse().ok())
        else {
            started.fail("an unexpected first line");
        };
        Self { addr, child: started.child, _stdout: started.stdout, log: started.log }
    }

    pub fn url(&self, room: &str) -> String {
        format!("ws://{}/rooms/{room}", self.addr)
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no shutdown code runs at all.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    pub async fn metric(&self, name: &str, labels: &str) -> f64 {
        super::metric_at(self.addr, name, labels).await
    }
}

/// A child process whose first line of stdout has arrived (its "ready" line), with its stderr
/// in a file for failure messages.
pub struct Started {
    pub child: Child,
    pub line: String,
    /// Kept open: the child's stdout is a pipe.
    pub stdout: BufReader<ChildStdout>,
    pub log: tempfile::NamedTempFile,
}

impl Started {
    pub async fn spawn(mut command: Command, what: &str) -> Self {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("reopen the log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let read = tokio::time::timeout(
            WAIT,
            tokio::task::spawn_blocking(move || {
                let mut stdout = stdout;
                let mut line = String::new();
                let read = stdout.read_line(&mut line);
                (read.map(|_| line), stdout)
            }),
        )
        .await;
        match read {
            Ok(Ok((Ok(line), stdout))) => Self { child, line, stdout, log },
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what} did not start; its log:\n{}", read_log(&log));
            }
        }
    }

    /// Kills the child and fails the test, showing what it logged.
    pub fn fail(mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("{why} {:?}; the log:\n{}", self.line, read_log(&self.log));
    }
}

pub fn read_log(log: &tempfile::NamedTempFile) -> String {
    std::fs::read_to_string(log.path()).unwrap_or_default()
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
