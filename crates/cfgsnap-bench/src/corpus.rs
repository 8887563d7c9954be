//! Synthetic RouterOS-shaped exports for the CPU benchmarks, and mutations of
//! them. Deterministic (seeded), so runs compare. Never printed.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};

/// Menus the generated rules are spread over.
const MENUS: &[&str] = &[
    "/interface bridge port",
    "/ip address",
    "/ip firewall filter",
    "/ip firewall nat",
    "/ip route",
    "/interface vlan",
    "/ip dhcp-server lease",
    "/user",
];

/// A normalized-looking export of `lines` lines (menu lines included), seeded
/// by `seed`: one menu line every 50 lines, `add …` rules in between.
pub fn export(lines: usize, seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = String::with_capacity(lines * 90);
    out.push_str("# software id = BENCH-0000\n# model = RB5009UG+S+\n");
    for i in 0..lines.saturating_sub(2) {
        if i % 50 == 0 {
            out.push_str(MENUS[(i / 50) % MENUS.len()]);
            out.push('\n');
        } else {
            out.push_str(&rule(&mut rng, i));
        }
    }
    out
}

fn rule(rng: &mut StdRng, i: usize) -> String {
    format!(
        "add action=accept chain=forward comment=\"rule {i}\" src-address=10.{}.{}.0/24 dst-port={} protocol=tcp\n",
        rng.gen_range(0..=255),
        rng.gen_range(0..=255),
        rng.gen_range(1..=65535)
    )
}

/// `text` with `fraction` of its `add` lines replaced (seeded by `seed`).
pub fn mutate(text: &str, fraction: f64, seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = String::with_capacity(text.len() + 64);
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("add ") && rng.gen_bool(fraction) {
            out.push_str(&rule(&mut rng, i + 1_000_000));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A pathological pair for the diff: the same few short lines in two random
/// orders, so almost every line matches many others and Myers has no anchors.
pub fn duplicate_heavy_pair(lines: usize) -> (String, String) {
    let mut rng = StdRng::seed_from_u64(7);
    let side = |rng: &mut StdRng| {
        let mut s = String::with_capacity(lines * 6);
        for _ in 0..lines {
            s.push_str(["add a\n", "add b\n", "add c\n"][rng.gen_range(0..3)]);
        }
        s
    };
    let old = side(&mut rng);
    let new = side(&mut rng);
    (old, new)
}

/// Lines of the real exports in `dir` (`*.rsc`), in file-name order, for
/// configurations shaped like real ones (their line lengths, menus and
/// values). Never printed.
///
/// # Errors
/// When the directory cannot be read or holds no export.
pub fn real_lines(dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rsc"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for file in files {
        let text = std::fs::read(&file)?;
        lines.extend(
            String::from_utf8_lossy(&text)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned),
        );
    }
    anyhow::ensure!(!lines.is_empty(), "no .rsc export in {}", dir.display());
    Ok(lines)
}

/// A configuration of `count` lines cut from `real` at a place chosen by
/// `seed` (wrapping around), so devices differ as real ones do.
pub fn real_export(real: &[String], count: usize, seed: u64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let start = rng.gen_range(0..real.len());
    let mut out = String::with_capacity(count * 64);
    for line in real.iter().cycle().skip(start).take(count) {
        out.push_str(line);
        out.push('\n');
    }
    out
}
