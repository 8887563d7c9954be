//! CPU benchmarks of the pure functions: validation and normalization
//! throughput and the diff / change summary of large and pathological
//! inputs (issue #6, item 5).

use std::path::Path;
use std::time::{Duration, Instant};

use cfgsnap::backup::changes::{diff, summarize};
use cfgsnap::backup::normalize::normalize;
use cfgsnap::backup::validate::validate;

use crate::corpus;
use crate::machine::ms;

/// Validates and normalizes the largest `.rsc` file in `corpus_dir` (and a
/// 100,000-line synthetic export) repeatedly and prints MB/s of each.
pub fn run_normalize(corpus_dir: &Path, seconds: f64) -> anyhow::Result<()> {
    let mut largest: Option<(u64, std::path::PathBuf)> = None;
    for entry in std::fs::read_dir(corpus_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rsc") {
            let len = std::fs::metadata(&path)?.len();
            if largest.as_ref().is_none_or(|(l, _)| len > *l) {
                largest = Some((len, path));
            }
        }
    }
    let (_, path) =
        largest.ok_or_else(|| anyhow::anyhow!("no .rsc file in {}", corpus_dir.display()))?;
    let text = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    throughput(&format!("corpus {name}"), &text, seconds);
    throughput(
        "synthetic 100000 lines",
        &corpus::export(100_000, 1),
        seconds,
    );
    Ok(())
}

fn throughput(label: &str, text: &str, seconds: f64) {
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        let valid = validate(std::hint::black_box(text.as_bytes()), usize::MAX);
        std::hint::black_box(valid.is_ok());
        runs += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "validate: {label}: input {} bytes, {runs} runs, {:.1} MB/s, {:.3} ms/run",
        text.len(),
        text.len() as f64 * runs as f64 / 1e6 / elapsed,
        elapsed * 1000.0 / runs as f64
    );
    let started = Instant::now();
    let mut runs = 0u64;
    let mut out_bytes = 0usize;
    while started.elapsed().as_secs_f64() < seconds {
        out_bytes = std::hint::black_box(normalize(std::hint::black_box(text)))
            .text
            .len();
        runs += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mb = text.len() as f64 * runs as f64 / 1e6;
    println!(
        "normalize: {label}: input {} bytes, output {out_bytes} bytes, {runs} runs, {:.1} MB/s, {:.3} ms/run",
        text.len(),
        mb / elapsed,
        elapsed * 1000.0 / runs as f64
    );
}

/// Diffs and summarizes a 100,000-line export against a copy with 1 % of its
/// lines changed, then a duplicate-heavy pair that must stop at `deadline`.
pub fn run_diff(lines: usize, deadline: Duration, repeats: u32) -> anyhow::Result<()> {
    let old = corpus::export(lines, 1);
    let new = corpus::mutate(&old, 0.01, 2);
    for _ in 0..repeats {
        let t = Instant::now();
        let d = diff(&old, &new, "a", "b", deadline);
        let t_diff = t.elapsed();
        let t = Instant::now();
        let changes = summarize(&old, &new, deadline);
        let t_sum = t.elapsed();
        println!(
            "diff: {lines} lines, 1% changed: diff {} ms (+{} -{}), summarize {} ms ({} components)",
            ms(t_diff),
            d.lines_added,
            d.lines_removed,
            ms(t_sum),
            changes.len()
        );
    }
    let (a, b) = corpus::duplicate_heavy_pair(lines);
    let t = Instant::now();
    let d = diff(&a, &b, "a", "b", deadline);
    let t_diff = t.elapsed();
    let t = Instant::now();
    let changes = summarize(&a, &b, deadline);
    let t_sum = t.elapsed();
    let limit = deadline + deadline / 4;
    println!(
        "diff: pathological {lines} duplicate lines, deadline {} ms: diff {} ms (+{} -{}), summarize {} ms ({} components): {}",
        deadline.as_millis(),
        ms(t_diff),
        d.lines_added,
        d.lines_removed,
        ms(t_sum),
        changes.len(),
        verdict(t_diff.max(t_sum), deadline, limit)
    );
    Ok(())
}

fn verdict(took: Duration, deadline: Duration, limit: Duration) -> &'static str {
    if took < deadline {
        "finished before the deadline"
    } else if took <= limit {
        "stopped at the deadline (within +25%)"
    } else {
        "OVER the deadline"
    }
}
