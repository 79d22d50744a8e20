//! CPU time and memory of a process, from Linux's `/proc` (the server's, and our own).

use std::path::PathBuf;
use std::process::Command;

/// Used when `getconf CLK_TCK` cannot be run: the value on every mainstream Linux platform.
const ASSUMED_CLK_TCK: u64 = 100;

/// A process whose figures are read from `/proc/{pid}` (or `/proc/self`).
#[derive(Debug, Clone)]
pub struct Process {
    dir: PathBuf,
}

impl Process {
    pub fn pid(pid: u32) -> Self {
        Self { dir: PathBuf::from(format!("/proc/{pid}")) }
    }

    pub fn current() -> Self {
        Self { dir: PathBuf::from("/proc/self") }
    }

    /// User plus system CPU time so far, in clock ticks.
    pub fn cpu_ticks(&self) -> Result<u64, ProcError> {
        let path = self.dir.join("stat");
        let text = std::fs::read_to_string(&path).map_err(|error| ProcError::Read { path, error })?;
        parse_stat_cpu_ticks(&text).ok_or_else(|| ProcError::Parse(self.dir.join("stat")))
    }

    /// A `kB` field of `/proc/{pid}/status` (`VmHWM`, `VmRSS`), in KiB.
    pub fn status_kib(&self, field: &str) -> Result<u64, ProcError> {
        let path = self.dir.join("status");
        let text = std::fs::read_to_string(&path).map_err(|error| ProcError::Read { path, error })?;
        parse_status_kib(&text, field).ok_or_else(|| ProcError::Parse(self.dir.join("status")))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("cannot understand {0}")]
    Parse(PathBuf),
}

/// Clock ticks per second for `/proc/*/stat` times, and where the number came from.
pub fn clock_ticks_per_second() -> (u64, &'static str) {
    let asked = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|ticks| *ticks > 0);
    match asked {
        Some(ticks) => (ticks, "getconf"),
        None => (ASSUMED_CLK_TCK, "assumed"),
    }
}

/// `utime + stime` (fields 14 and 15) from the text of `/proc/{pid}/stat`.
///
/// The command name (field 2) is in parentheses and may itself hold spaces and parentheses, so
/// fields are counted from the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11); // field 3 (state) is the first one here
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The value of a `Field:   1234 kB` line of `/proc/{pid}/status`.
pub fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name() {
        let stat = "4242 (dojo (x) server) S 1 4242 4242 0 -1 4194560 5000 0 0 0 \
                    150 25 0 0 20 0 9 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(175));
        assert_eq!(parse_stat_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_stat_cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn status_fields_are_kib() {
        let status = "Name:\tdojo-server\nVmPeak:\t  200000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(51_200));
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(40_960));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        assert_eq!(parse_status_kib(status, "Vm"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn our_own_process_can_be_read() {
        let me = Process::current();
        assert!(me.cpu_ticks().is_ok());
        assert!(me.status_kib("VmHWM").unwrap() > 0);
        assert!(clock_ticks_per_second().0 > 0);
    }
}
