//! Clocks, resource usage, socket options and `/proc` sampling. The only
//! `unsafe` in the crate is the libc calls here.

use std::io;
use std::os::fd::AsRawFd;

/// CLOCK_MONOTONIC in nanoseconds: one clock shared by every process on the
/// host, so the stamp written by a publisher is comparable anywhere.
pub(crate) fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time (user + system) this process has used, in nanoseconds.
pub(crate) fn self_cpu_ns() -> u64 {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_SELF is always accepted.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raise the soft open-file limit to the hard limit; returns the new soft limit.
pub(crate) fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let want = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit not above the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            return want.rlim_cur;
        }
    }
    lim.rlim_cur
}

/// Set IP_BIND_ADDRESS_NO_PORT: a later `bind` to port 0 fixes only the
/// address, and `connect` picks the port.
pub(crate) fn bind_address_no_port(sock: &impl AsRawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: the fd is a live socket borrowed for the call; `one` is a valid
    // c_int and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::from_ref(&one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One reading of the broker process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BrokerSample {
    /// utime + stime, nanoseconds.
    pub(crate) cpu_ns: u64,
    /// Resident set size, KiB.
    pub(crate) rss_kb: u64,
    /// Peak resident set size (VmHWM), KiB.
    pub(crate) hwm_kb: u64,
}

/// Read `/proc/PID/stat` and `/proc/PID/status`.
pub(crate) fn sample_broker(pid: u32) -> io::Result<BrokerSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unparsable /proc/{pid}"),
        )
    };
    let ticks = parse_stat_ticks(&stat).ok_or_else(bad)?;
    let (rss_kb, hwm_kb) = parse_status_mem(&status).ok_or_else(bad)?;
    Ok(BrokerSample {
        cpu_ns: ticks * (1_000_000_000 / clk_tck()),
        rss_kb,
        hwm_kb,
    })
}

fn clk_tck() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// utime + stime in clock ticks (fields 14 and 15). The command name (field
/// 2) may contain spaces and parentheses, so fields are counted after the
/// last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace(); // field 3 (state) first
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `(VmRSS, VmHWM)` in KiB.
fn parse_status_mem(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_tricky_comm() {
        let stat = "1234 (my (odd) broker) S 1 1234 1234 0 -1 4194560 300 0 0 0 \
                    250 70 0 0 20 0 1 0 100 1000000 500 18446744073709551615";
        assert_eq!(parse_stat_ticks(stat), Some(320));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn status_memory_fields() {
        let status =
            "Name:\tmosquitto\nVmPeak:\t  9000 kB\nVmHWM:\t    6000 kB\nVmRSS:\t    5000 kB\n";
        assert_eq!(parse_status_mem(status), Some((5000, 6000)));
        assert_eq!(parse_status_mem("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_can_be_sampled_and_clocks_advance() {
        let s = sample_broker(std::process::id()).unwrap();
        assert!(s.rss_kb > 0 && s.hwm_kb >= s.rss_kb);
        let a = mono_ns();
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_add(std::hint::black_box(i));
        }
        assert!(x > 0);
        assert!(mono_ns() > a);
        assert!(self_cpu_ns() > 0);
    }
}
