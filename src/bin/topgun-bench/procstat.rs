//! What the server process spent: CPU time from `/proc/<pid>/stat` (every thread,
//! exited ones included) and resident memory from `/proc/<pid>/status`.

use std::time::Duration;

/// CPU time (user + system) that process `pid` has used so far.
pub fn cpu_time(pid: u32) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields we want follow its closing ')'.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<u64>().ok());
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        return Err(std::io::Error::other("unexpected /proc/<pid>/stat layout"));
    };
    let per_second = clock_ticks_per_second();
    Ok(Duration::from_secs_f64((user + system) as f64 / per_second))
}

/// Resident set size of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|value| value.parse::<u64>().ok())
        .ok_or_else(|| std::io::Error::other("no VmRSS in /proc/<pid>/status"))?;
    Ok(kib * 1024)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// Raises this process's open-file limit to its hard limit (children inherit it), so
/// thousands of idle connections fit; returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// CPU time a server spent over one measured stretch.
pub struct CpuMeter {
    pid: u32,
    start: Duration,
}

impl CpuMeter {
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            start: cpu_time(pid).unwrap_or_default(),
        }
    }

    /// CPU seconds used since [`CpuMeter::start`].
    pub fn seconds(&self) -> f64 {
        let now = cpu_time(self.pid).unwrap_or_default();
        now.saturating_sub(self.start).as_secs_f64()
    }
}
