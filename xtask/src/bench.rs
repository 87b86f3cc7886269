//! `cargo xtask bench [--quick] [SCENARIO...]`: runs the benchmark scenarios of
//! design/BENCHMARKS.md that exist, each as a fresh process, three times (once with `--quick`),
//! prints every run's JSON line and then a table of medians.
//!
//! `--quick` is a smoke run with small sizes (`HAKUBAN_BENCH_QUICK=1`, the `dev` profile): it
//! checks that every scenario still runs, in well under a minute; its figures are not for
//! comparison. The benches also run at smoke size under `cargo test --all-targets`, which is how
//! the README's test command covers them.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

/// Scenarios implemented, as (ids reported, package, bench target). S2's bench reports S0, the
/// floor it is compared with, in the same process.
pub const BENCHES: &[(&[&str], &str, &str)] = &[
    (&["S1"], "hakuban-core", "s1_local_fanout"),
    (&["S0", "S2"], "hakuban-tokio", "s2_router_pingpong"),
    (&["S3"], "hakuban-tokio", "s3_router_throughput"),
    (&["S4"], "hakuban-tokio", "s4_many_objects"),
    (&["S5"], "hakuban-tokio", "s5_deltas"),
    (&["S6"], "hakuban-tokio", "s6_reconnect"),
    (&["S7"], "hakuban-tokio", "s7_failover"),
    (&["S8"], "hakuban-router", "s8_aggregate"),
    (&["S9"], "hakuban-router", "s9_scale"),
];

/// Runs the selected scenarios (all when none is named).
pub fn run(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let selected: Vec<&String> = args.iter().filter(|a| *a != "--quick").collect();
    let known: Vec<&str> = BENCHES.iter().flat_map(|(ids, _, _)| ids.iter().copied()).collect();
    if let Some(unknown) = selected.iter().find(|s| !known.iter().any(|k| k.eq_ignore_ascii_case(s))) {
        return Err(format!("no scenario `{unknown}`; implemented: {}", known.join(", ")));
    }
    let wanted =
        |ids: &[&str]| selected.is_empty() || ids.iter().any(|id| selected.iter().any(|s| s.eq_ignore_ascii_case(id)));
    let runs = if quick { 1 } else { 3 };
    let mut lines: Vec<serde_json::Value> = Vec::new();
    for (ids, package, target) in BENCHES {
        if !wanted(ids) {
            continue;
        }
        for run in 1..=runs {
            eprintln!("xtask: {} run {run}/{runs} (cargo bench -p {package} --bench {target})", ids.join("+"));
            lines.extend(run_once(package, target, quick)?);
        }
    }
    print_medians(&lines);
    Ok(())
}

/// One fresh process of a bench target; its JSON lines.
fn run_once(package: &str, target: &str, quick: bool) -> Result<Vec<serde_json::Value>, String> {
    let mut command = Command::new(env!("CARGO"));
    command.args(["bench", "-q", "-p", package, "--bench", target]);
    if quick {
        command.args(["--profile", "dev"]).env("HAKUBAN_BENCH_QUICK", "1");
        if target == "s1_local_fanout" {
            // Criterion's test mode: each benchmark once.
            command.args(["--", "--test"]);
        }
    }
    // One measured run per process: the three runs are three processes.
    command.env("RUNS", "1").stderr(Stdio::inherit());
    let output = command.output().map_err(|e| format!("cannot run cargo bench: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!("bench {target} failed ({}):\n{stdout}", output.status));
    }
    let mut lines = Vec::new();
    for line in stdout.lines() {
        if line.starts_with("{\"scenario\"") {
            println!("{line}");
            let value = serde_json::from_str(line).map_err(|e| format!("{target} printed bad JSON ({e}): {line}"))?;
            lines.push(value);
        }
    }
    if lines.is_empty() {
        return Err(format!("bench {target} printed no result line"));
    }
    Ok(lines)
}

/// The median of each numeric result, per scenario and parameters, as a table.
fn print_medians(lines: &[serde_json::Value]) {
    let mut groups: BTreeMap<(String, String), BTreeMap<String, Vec<f64>>> = BTreeMap::new();
    for line in lines {
        let scenario = line["scenario"].as_str().unwrap_or("?").to_string();
        let params = line["params"].to_string();
        let results = groups.entry((scenario, params)).or_default();
        if let Some(map) = line["results"].as_object() {
            for (key, value) in map {
                if let Some(number) = value.as_f64() {
                    results.entry(key.clone()).or_default().push(number);
                }
            }
        }
    }
    println!();
    println!("| scenario | params | result | median | runs |");
    println!("| --- | --- | --- | --- | --- |");
    for ((scenario, params), results) in groups {
        for (key, mut values) in results {
            let mut runs: Vec<String> = values.iter().map(|v| format_number(*v)).collect();
            values.sort_by(f64::total_cmp);
            let median = values[values.len() / 2];
            if runs.len() > 5 {
                // S1's criterion samples: one line per iteration.
                let (low, high) = (values[0], values[values.len() - 1]);
                runs = vec![format!("{} samples, {}–{}", values.len(), format_number(low), format_number(high))];
            }
            println!("| {scenario} | `{params}` | {key} | {} | {} |", format_number(median), runs.join(", "));
        }
    }
}

fn format_number(value: f64) -> String {
    if value.abs() >= 100.0 || value.fract() == 0.0 { format!("{value:.0}") } else { format!("{value:.3}") }
}
