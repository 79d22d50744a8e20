//! Memory of a process, from Linux's `/proc/{pid}/status` (a server's, or this test's own).

/// A `kB` field of the status file of process `pid` (`None`: this process), such as `VmRSS` or
/// `VmHWM`, in KiB; `None` when the process or the field is gone.
pub fn status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let dir = pid.map_or_else(|| "self".to_owned(), |pid| pid.to_string());
    let text = std::fs::read_to_string(format!("/proc/{dir}/status")).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?.trim();
        value.strip_suffix("kB")?.trim().parse().ok()
    })
}
