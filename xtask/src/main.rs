//! Project automation, run as `cargo xtask <command>`:
//!
//! * `ci`: format check, clippy with `-D warnings`, the dependency check, documentation without
//!   warnings, every test.
//! * `test`: every test of the workspace (unit, integration, doc).
//! * `deps`: checks that hakuban-core's normal dependencies contain no runtime or socket crate.
//! * `header`: regenerates hakuban-ffi's C header (`crates/hakuban-ffi/include/hakuban.h`).
//! * `fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets of `fuzz/` for N seconds each
//!   (default 30; needs the nightly toolchain and `cargo install cargo-fuzz`).
//! * `bench [--quick] [SCENARIO...]`: runs the benchmark scenarios of design/BENCHMARKS.md that
//!   exist, three fresh processes each, and prints a table of medians (see `bench.rs`).

mod bench;

use std::process::{Command, ExitCode};

/// Crates hakuban-core must never depend on (normal dependencies): it is runtime-free.
const FORBIDDEN_CORE_DEPENDENCIES: &[&str] = &["tokio", "async-tungstenite", "tungstenite", "mio"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("test") => test(),
        Some("deps") => deps(),
        Some("header") => header(false),
        Some("fuzz") => fuzz(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        _ => {
            Err("usage: cargo xtask <ci | test | deps | header | fuzz [--seconds N] [TARGET...] | bench [--quick] [SCENARIO...]>"
                .to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn cargo(args: &[&str]) -> Result<(), String> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(env!("CARGO")).args(args).status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

fn ci() -> Result<(), String> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    deps()?;
    header(true)?;
    docs()?;
    test()
}

/// The fuzz targets of `fuzz/`.
const FUZZ_TARGETS: &[&str] = &["decode_batch", "apply_payload", "link_input"];

/// Runs each selected fuzz target for a while; a crash stops with the fuzzer's report (the
/// input is saved under `fuzz/artifacts/`; turn it into a regression test).
fn fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = 30u64;
    let mut targets = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--seconds" {
            let value = rest.next().ok_or("--seconds needs a number")?;
            seconds = value.parse().map_err(|_| format!("--seconds: `{value}` is not a whole number"))?;
        } else if FUZZ_TARGETS.contains(&arg.as_str()) {
            targets.push(arg.as_str());
        } else {
            return Err(format!("unknown fuzz target `{arg}`; targets: {}", FUZZ_TARGETS.join(", ")));
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for target in targets {
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let status = Command::new("cargo")
            .current_dir(&dir)
            .args(["+nightly", "fuzz", "run", target, "--", &format!("-max_total_time={seconds}")])
            .status()
            .map_err(|e| format!("cannot run cargo +nightly fuzz (cargo install cargo-fuzz): {e}"))?;
        if !status.success() {
            return Err(format!("fuzz target {target} failed ({status}): see fuzz/artifacts/{target}/"));
        }
    }
    Ok(())
}

/// Generates the C header from hakuban-ffi's sources; with `check`, fails if the committed one
/// differs instead of writing it.
fn header(check: bool) -> Result<(), String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crate_dir = root.join("crates/hakuban-ffi");
    let path = crate_dir.join("include/hakuban.h");
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).map_err(|e| format!("cbindgen.toml: {e}"))?;
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .map_err(|e| format!("cbindgen: {e}"))?;
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let committed = std::fs::read(&path).unwrap_or_default();
    if check {
        eprintln!("xtask: checking {} against the code", path.display());
        if generated != committed {
            return Err("crates/hakuban-ffi/include/hakuban.h is out of date: run `cargo xtask header`".to_string());
        }
        return Ok(());
    }
    std::fs::create_dir_all(crate_dir.join("include")).map_err(|e| e.to_string())?;
    std::fs::write(&path, generated).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// Builds the documentation with every rustdoc warning (broken links included) as an error.
fn docs() -> Result<(), String> {
    eprintln!("xtask: cargo doc --workspace --no-deps (warnings are errors)");
    let status = Command::new(env!("CARGO"))
        .args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings")
        .status()
        .map_err(|e| format!("cannot run cargo doc: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo doc` failed ({status})")) }
}

fn test() -> Result<(), String> {
    let mut totals = TestTotals::default();
    let outcome = cargo_test(&["test", "--workspace", "--all-targets"], &mut totals)
        .and_then(|()| cargo_test(&["test", "--workspace", "--doc"], &mut totals))
        .and_then(|()| preserve_order_test(&mut totals));
    // One closing line over every test binary, so a reader of the log sees the whole count.
    println!("tests: {} passed, {} failed, {} skipped", totals.passed, totals.failed, totals.ignored);
    outcome?;
    if totals.passed == 0 {
        return Err("no test ran".to_string());
    }
    Ok(())
}

/// The descriptor tests again, with serde_json's `preserve_order` feature on (any crate in a
/// user's build can turn it on, and then maps keep insertion order): identity must not change.
fn preserve_order_test(totals: &mut TestTotals) -> Result<(), String> {
    let args = ["test", "-p", "hakuban-core", "--lib", "--features", "serde_json/preserve_order", "descriptor::"];
    cargo_test_env(&args, &[("HAKUBAN_TEST_PRESERVE_ORDER", "1")], totals)
}

#[derive(Default)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    /// Adds the counts of a libtest summary line (`test result: ok. 3 passed; 0 failed; 1 ignored; ...`).
    fn add_summary(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else { return };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else { continue };
            let Ok(count) = count.parse::<u64>() else { continue };
            match label {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                "ignored" => self.ignored += count,
                _ => {}
            }
        }
    }
}

/// Runs a `cargo test` command, echoing its output and adding up its summary lines.
fn cargo_test(args: &[&str], totals: &mut TestTotals) -> Result<(), String> {
    cargo_test_env(args, &[], totals)
}

/// As [`cargo_test`], with `env` set for cargo and the tests it runs.
fn cargo_test_env(args: &[&str], env: &[(&str, &str)], totals: &mut TestTotals) -> Result<(), String> {
    use std::io::{BufRead, BufReader};
    let shown: Vec<String> = env.iter().map(|(key, value)| format!("{key}={value} ")).collect();
    eprintln!("xtask: {}cargo {}", shown.concat(), args.join(" "));
    let mut child = Command::new(env!("CARGO"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            totals.add_summary(&line);
        }
    }
    let status = child.wait().map_err(|e| format!("cargo did not finish: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("`cargo {}` failed ({status})", args.join(" "))) }
}

fn deps() -> Result<(), String> {
    let output = Command::new(env!("CARGO"))
        .args(["tree", "-p", "hakuban-core", "-e", "normal", "--prefix", "none"])
        .output()
        .map_err(|e| format!("cannot run cargo tree: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo tree failed: {}", String::from_utf8_lossy(&output.stderr)));
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let found: Vec<&str> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| FORBIDDEN_CORE_DEPENDENCIES.contains(name))
        .collect();
    if found.is_empty() {
        eprintln!("xtask: hakuban-core depends on no runtime or socket crate");
        Ok(())
    } else {
        Err(format!("hakuban-core must stay runtime-free, but depends on {found:?}"))
    }
}
