//! Machine facts printed with every figure, and process statistics read from
//! `/proc` (CPU time, peak RSS, open file descriptors). Linux only.

use std::fs;
use std::process::Command;
use std::time::Duration;

/// Prints the machine the figures were taken on, and its load at the start.
pub fn print_facts() {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown", str::trim);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem_kib = meminfo_kib("MemTotal:").unwrap_or(0);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    println!(
        "machine: cpu=\"{model}\" cores={cores} mem={:.1}GiB kernel={} rustc=\"{rustc}\"",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    );
    println!(
        "machine: loadavg(1m 5m 15m)={} (other work on the machine adds noise)",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn meminfo_kib(key: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Clock ticks per second of `/proc/*/stat` times (`getconf CLK_TCK`, else 100).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Fields of `/proc/<pid>/stat` after the command name (field 3 is index 0).
fn stat_fields(pid: &str) -> Vec<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

/// CPU time (user + system) of a process; `"self"` for this one.
pub fn cpu_time(pid: &str) -> Duration {
    let f = stat_fields(pid);
    // utime and stime are fields 14 and 15, i.e. indexes 11 and 12 here.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

/// CPU time of the reaped children of a process (`cutime + cstime`), as a
/// shell sees them after `wait`; parsed from a `/proc/<pid>/stat` line.
pub fn children_cpu_time_of_stat_line(line: &str) -> Duration {
    let rest = line.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

/// Peak resident set size of a process, in MiB (`VmHWM`).
pub fn peak_rss_mib(pid: &str) -> f64 {
    status_kib(pid, "VmHWM:") as f64 / 1024.0
}

/// Current resident set size of a process, in MiB (`VmRSS`).
pub fn rss_mib(pid: &str) -> f64 {
    status_kib(pid, "VmRSS:") as f64 / 1024.0
}

fn status_kib(pid: &str, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Number of open file descriptors of a process.
pub fn open_fds(pid: &str) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// The soft limit on open files of this process.
pub fn fd_limit() -> String {
    fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or("unknown")
        .to_owned()
}

/// Percentile (0–100) of sorted samples, by nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}
