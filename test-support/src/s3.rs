//! An S3-compatible server for the asset-store tests: moto's standalone server (`moto_server`,
//! installed by `scripts/install-moto.sh` into `target/tools/moto`), one process per test on a
//! free port, with a fresh bucket. S3 speaks HTTP; the store under test talks to it over a
//! real socket exactly as it would to S3 or MinIO.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3StandIn {
    pub port: u16,
    pub bucket: String,
    child: Child,
}

/// `$DOJO_MOTO_SERVER`, else `target/tools/moto/bin/moto_server` in this workspace.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("DOJO_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tools/moto/bin/moto_server");
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-moto.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

impl S3StandIn {
    pub async fn start() -> Self {
        let port = crate::free_port();
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let bucket = format!("dojo-test-{:08x}", rand::random::<u32>());
        let stand_in = Self { port, bucket, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Creating the bucket is also the readiness check.
            if let Ok(status) = stand_in.http("PUT", &format!("/{}", stand_in.bucket)) {
                assert_eq!(status, 200, "creating the test bucket");
                break;
            }
            assert!(Instant::now() < deadline, "moto_server did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stand_in
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The asset store URL and the options (also usable as `AWS_*` environment variables,
    /// uppercased) that reach this bucket.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint()),
            ("aws_allow_http", "true".into()),
            ("aws_region", "us-east-1".into()),
            ("aws_access_key_id", "testing".into()),
            ("aws_secret_access_key", "testing".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The options as environment variables for a child process.
    pub fn env(&self) -> Vec<(String, String)> {
        self.options().into_iter().map(|(k, v)| (k.to_ascii_uppercase(), v)).collect()
    }

    /// The keys of every object in the bucket (S3's ListObjectsV2, parsed just enough).
    pub fn keys(&self) -> Vec<String> {
        let body = self.get(&format!("/{}?list-type=2", self.bucket)).unwrap_or_default();
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }

    fn http(&self, method: &str, path: &str) -> std::io::Result<u16> {
        Ok(self.request(method, path)?.0)
    }

    fn get(&self, path: &str) -> std::io::Result<String> {
        Ok(self.request("GET", path)?.1)
    }

    /// One HTTP/1.0 request (the connection closes after the answer).
    fn request(&self, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for S3StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
