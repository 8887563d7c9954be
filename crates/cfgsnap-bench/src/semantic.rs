//! The semantic RouterOS diff (`backup::semantic`): parsing throughput and
//! the diff and change summary of a generated export against a copy with
//! 1 % of its rules changed, then of the two largest corpus exports (each
//! against the other and against a copy with one property edited). Never
//! prints configuration text.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cfgsnap::backup::normalize::normalize;
use cfgsnap::backup::semantic;

use crate::corpus;
use crate::machine::{cpu_time, ms};

/// Runs the generated case `repeats` times, then the corpus cases.
pub fn run(corpus_dir: &Path, lines: usize, repeats: u32) -> anyhow::Result<()> {
    let old = corpus::export(lines, 1);
    let new = corpus::mutate(&old, 0.01, 2);
    for _ in 0..repeats {
        measure(&format!("{lines} generated lines, 1% changed"), &old, &new);
    }
    let [a, b] = largest_two(corpus_dir)?;
    let (a_text, b_text) = (read_normalized(&a)?, read_normalized(&b)?);
    measure("two largest corpus exports", &a_text, &b_text);
    let edited = a_text.replacen(" comment=", " comment=bench-edit-", 1);
    measure(
        "largest corpus export, one property edited",
        &a_text,
        &edited,
    );
    Ok(())
}

fn measure(label: &str, old: &str, new: &str) {
    let export = semantic::parse(old);
    let diff = semantic::diff(old, new);
    let summaries = semantic::summarize(old, new).map_or(0, |s| s.len());
    let parse = timed(|| {
        std::hint::black_box(semantic::parse(std::hint::black_box(old)));
    });
    let diffing = timed(|| {
        std::hint::black_box(semantic::diff(old, new));
    });
    let summing = timed(|| {
        std::hint::black_box(semantic::summarize(old, new));
    });
    let mb_per_s = old.len() as f64 / 1e6 / parse.cpu.as_secs_f64().max(1e-9);
    println!(
        "semantic: {label}: {} bytes, {} lines; parse {parse} ({mb_per_s:.1} MB/s of CPU); diff {diffing} ({} changes); summarize {summing} ({summaries} summaries)",
        old.len(),
        export.lines.len(),
        diff.changes.len(),
    );
}

/// Wall and CPU time of one run of an operation, from repeated runs.
struct Timing {
    /// The fastest run's wall time.
    min: Duration,
    /// The median run's wall time.
    median: Duration,
    /// This process's CPU time (user + system) per run.
    cpu: Duration,
    runs: u32,
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CPU {} ms/run, wall min {} ms, median {} ms ({} runs)",
            ms(self.cpu),
            ms(self.min),
            ms(self.median),
            self.runs
        )
    }
}

/// Runs `op` until at least a second has passed (at least 3 runs, at most
/// 1,000): `/proc`'s CPU time counts in 10 ms ticks, too coarse for one run.
fn timed(mut op: impl FnMut()) -> Timing {
    let cpu_start = cpu_time("self");
    let start = Instant::now();
    let mut walls = Vec::new();
    while (walls.len() < 3 || start.elapsed() < Duration::from_secs(1)) && walls.len() < 1000 {
        let t = Instant::now();
        op();
        walls.push(t.elapsed());
    }
    let cpu = cpu_time("self").saturating_sub(cpu_start);
    walls.sort_unstable();
    let runs = u32::try_from(walls.len()).unwrap_or(u32::MAX);
    Timing {
        min: walls[0],
        median: walls[walls.len() / 2],
        cpu: cpu / runs,
        runs,
    }
}

fn largest_two(dir: &Path) -> anyhow::Result<[PathBuf; 2]> {
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rsc") {
            files.push((std::fs::metadata(&path)?.len(), path));
        }
    }
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    let mut largest = files.into_iter().map(|(_, p)| p);
    match (largest.next(), largest.next()) {
        (Some(a), Some(b)) => Ok([a, b]),
        _ => anyhow::bail!("fewer than two .rsc files in {}", dir.display()),
    }
}

fn read_normalized(path: &Path) -> anyhow::Result<String> {
    Ok(normalize(&String::from_utf8_lossy(&std::fs::read(path)?)).text)
}
