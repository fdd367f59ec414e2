//! Resources of this process, read from `/proc/self` (Linux). Elsewhere they are absent, not
//! zero.

use serde::{Deserialize, Serialize};

/// The kernel reports CPU times in clock ticks of `USER_HZ`, which Linux fixes at 100 on every
/// architecture for user space (`sysconf(_SC_CLK_TCK)`).
const USER_HZ: f64 = 100.0;

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// User plus system CPU time since the process started, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
}

/// CPU time and RSS now; `None` where `/proc/self` cannot be read.
pub fn resources() -> Option<Resources> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    Some(Resources { cpu_seconds: cpu_seconds(&stat)?, rss_bytes: rss_bytes(&status)? })
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_an_awkward_command_name() {
        let stat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 1000 200 0";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(rss_bytes("Name:\tx\nVmRSS:\t  1024 kB\n"), Some(1024 * 1024));
    }

    #[test]
    fn this_process_has_resources() {
        let r = resources().expect("/proc/self is readable on Linux");
        assert!(r.rss_bytes > 0);
    }
}
