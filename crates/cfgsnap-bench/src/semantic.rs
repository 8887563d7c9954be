//! The semantic RouterOS diff (`backup::semantic`): parsing throughput and
//! the diff and change summary of a generated export against a copy with
//! 1 % of its rules changed, then of the two largest corpus exports (each
//! against the other and against a copy with one property edited). Never
//! prints configuration text.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cfgsnap::backup::normalize::normalize;
use cfgsnap::backup::semantic;

use crate::corpus;
use crate::machine::ms;

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
    let t = Instant::now();
    let export = std::hint::black_box(semantic::parse(std::hint::black_box(old)));
    let t_parse = t.elapsed();
    let t = Instant::now();
    let diff = std::hint::black_box(semantic::diff(old, new));
    let t_diff = t.elapsed();
    let t = Instant::now();
    let summaries = semantic::summarize(old, new).map_or(0, |s| s.len());
    let t_sum = t.elapsed();
    let mb_per_s = old.len() as f64 / 1e6 / t_parse.as_secs_f64().max(1e-9);
    println!(
        "semantic: {label}: {} bytes, {} lines parsed in {} ms ({mb_per_s:.1} MB/s); diff {} ms ({} changes); summarize {} ms ({summaries} summaries)",
        old.len(),
        export.lines.len(),
        ms(t_parse),
        ms(t_diff),
        diff.changes.len(),
        ms(t_sum),
    );
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
