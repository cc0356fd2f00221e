//! Probes of processes and of the kernel's UDP counters for the
//! benchmarks, read from `/proc` (Linux; elsewhere they read 0 or nothing).
//! Ticks are taken as 10 ms (`CLK_TCK` = 100 on Linux).

use std::time::Duration;

/// (name, utime + stime) from a `/proc/.../stat` line.
pub fn parse_stat(stat: &str) -> Option<(String, Duration)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |field: usize| f.get(field - 3).and_then(|v| v.parse::<u64>().ok());
    Some((name, Duration::from_millis((ticks(14)? + ticks(15)?) * 10)))
}

/// CPU time of this whole process so far (all threads, live or ended).
pub fn process_cpu() -> Duration {
    cpu_of("self")
}

/// CPU time of process `pid` (`"self"` or a number) so far, user and
/// system, all threads (zero if it cannot be read).
pub fn cpu_of(pid: &str) -> Duration {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .map_or(Duration::ZERO, |x| x.1)
}

/// Resident memory of process `pid` (`"self"` or a number), bytes
/// (`VmRSS` of `/proc/<pid>/status`; 0 if it cannot be read).
pub fn rss_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The kernel's count of UDP datagrams dropped because a socket's receive
/// buffer was full (system-wide, `/proc/net/snmp`; 0 where unavailable).
pub fn udp_rcvbuf_errors() -> u64 {
    let Ok(snmp) = std::fs::read_to_string("/proc/net/snmp") else {
        return 0;
    };
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Datagrams dropped so far by the IPv4 UDP socket bound to `port`
/// (`/proc/net/udp`, last column; 0 where unavailable).
pub fn udp_socket_drops(port: u16) -> u64 {
    let Ok(table) = std::fs::read_to_string("/proc/net/udp") else {
        return 0;
    };
    let want = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1)?.ends_with(&want)).then(|| f.last()?.parse::<u64>().ok())?
        })
        .sum()
}
