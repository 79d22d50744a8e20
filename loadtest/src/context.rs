//! What every scenario shares: the room prefix, the clock, and the processes measured (the
//! server's, from `/proc`, and the generator's own).

use std::time::Instant;

use crate::bench::BenchClock;
use crate::config::Config;
use crate::procfs::{self, ProcError, Process};
use crate::report::{RunMeta, ServerSample, cpu_usage, kib_to_mib};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("--server-pid {pid}: {error} (is it a process on this machine?)")]
    ServerPid { pid: u32, error: ProcError },
    #[error("{0}")]
    Flags(String),
}

/// What every scenario shares: the room prefix, the clock, and the processes measured.
pub(crate) struct Context {
    pub prefix: String,
    pub clock: BenchClock,
    pub meter: Meter,
}

impl Context {
    pub fn meta(&self, config: &Config, kind: &str) -> RunMeta {
        RunMeta {
            kind: kind.into(),
            scenario: config.scenario.name().into(),
            protocol: config.protocol.name().into(),
            server_name: config.server_name.clone(),
            url: config.url.clone(),
            room_prefix: self.prefix.clone(),
        }
    }
}

/// CPU time and memory of the server (with `--server-pid`, plus any `--also-server-pid`: a
/// cluster's figures are the sums over its processes) and of this process.
pub(crate) struct Meter {
    server: Option<(u32, Vec<Process>)>,
    me: Process,
    pub clk_tck: u64,
    pub clk_tck_source: &'static str,
}

/// CPU counters at the start of a measured phase.
pub(crate) struct Mark {
    at: Instant,
    server_ticks: Option<u64>,
    my_ticks: Option<u64>,
}

/// The sum of `read` over `processes`; `Err` if any one cannot be read.
fn sum_over<E>(processes: &[Process], read: impl Fn(&Process) -> Result<u64, E>) -> Result<u64, E> {
    processes.iter().try_fold(0u64, |total, process| Ok(total.saturating_add(read(process)?)))
}

impl Meter {
    pub(crate) fn new(server_pid: Option<u32>, also_server_pids: &[u32]) -> Result<Self, RunError> {
        let server = match server_pid {
            Some(first) => {
                let mut processes = Vec::with_capacity(1 + also_server_pids.len());
                for &pid in std::iter::once(&first).chain(also_server_pids) {
                    let process = Process::pid(pid);
                    process.cpu_ticks().map_err(|error| RunError::ServerPid { pid, error })?;
                    processes.push(process);
                }
                Some((first, processes))
            }
            None => None,
        };
        let (clk_tck, clk_tck_source) = procfs::clock_ticks_per_second();
        Ok(Self { server, me: Process::current(), clk_tck, clk_tck_source })
    }

    fn server_ticks(&self) -> Option<u64> {
        sum_over(&self.server.as_ref()?.1, Process::cpu_ticks).ok()
    }

    fn server_status_kib(&self, field: &str) -> Option<u64> {
        sum_over(&self.server.as_ref()?.1, |process| process.status_kib(field)).ok()
    }

    pub fn mark(&self) -> Mark {
        Mark { at: Instant::now(), server_ticks: self.server_ticks(), my_ticks: self.me.cpu_ticks().ok() }
    }

    /// The server's CPU seconds since `mark` and that as a percentage of one core.
    pub fn server_cpu(&self, mark: &Mark) -> Option<(f64, f64)> {
        let after = self.server_ticks()?;
        Some(cpu_usage(mark.server_ticks?, after, self.clk_tck, mark.at.elapsed().as_secs_f64()))
    }

    pub fn loadgen_cpu(&self, mark: &Mark) -> Option<(f64, f64)> {
        let after = self.me.cpu_ticks().ok()?;
        Some(cpu_usage(mark.my_ticks?, after, self.clk_tck, mark.at.elapsed().as_secs_f64()))
    }

    /// The server's `VmRSS` now, in KiB.
    pub fn server_rss_kib(&self) -> Option<u64> {
        self.server_status_kib("VmRSS")
    }

    pub fn has_server(&self) -> bool {
        self.server.is_some()
    }

    /// Memory now, and CPU since `mark` if given.
    pub fn sample(&self, mark: Option<&Mark>) -> Option<ServerSample> {
        let (pid, processes) = self.server.as_ref()?;
        let cpu = mark.and_then(|mark| self.server_cpu(mark));
        Some(ServerSample {
            pid: *pid,
            processes: processes.len(),
            rss_mib: self.server_status_kib("VmRSS").map(kib_to_mib),
            // With several processes, the sum of each one's peak: an upper bound of the
            // cluster's peak, as the peaks need not coincide.
            peak_rss_mib: self.server_status_kib("VmHWM").map(kib_to_mib),
            cpu_s: cpu.map(|(s, _)| s),
            cpu_percent: cpu.map(|(_, p)| p),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_meter_adds_up_its_processes() {
        let me = std::process::id();
        let one = Meter::new(Some(me), &[]).expect("own pid readable");
        let twice = Meter::new(Some(me), &[me]).expect("own pid readable");
        let single = one.sample(None).expect("a server is measured");
        let summed = twice.sample(None).expect("a server is measured");
        assert_eq!((single.processes, summed.processes), (1, 2));
        // The peak only grows, so the sum of two readings is at least one reading (rounding aside).
        assert!(summed.peak_rss_mib.unwrap() > single.peak_rss_mib.unwrap());
        // A process that does not exist is refused before the run starts.
        assert!(Meter::new(Some(me), &[u32::MAX]).is_err());
    }
}
