//! The C API from real C programs: the header compiles on its own as C99 and as C++, and the C
//! test and stress programs (tests/c/), compiled with the system C compiler against the header
//! and the built shared library, pass under `valgrind --leak-check=full --error-exitcode=1`, the
//! routed part through the real router binary. Needs `cc`, `c++` and `valgrind` (`.ci/run`
//! installs them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Where this test's profile puts artifacts (`target/debug`), from the test binary's own path.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).expect("test binaries live in <target>/<profile>/deps").to_path_buf()
}

/// Builds the shared library and the router (cargo builds only the rlib for tests), once.
fn built() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let mut command = Command::new(env!("CARGO"));
        command.args(["build", "-p", "hakuban-ffi", "-p", "hakuban-router"]);
        if dir.file_name().is_some_and(|name| name == "release") {
            command.arg("--release");
        }
        let status = command.status().expect("cargo runs");
        assert!(status.success(), "building libhakuban_ffi and hakuban-router failed");
        dir
    })
}

fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hakuban-ffi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Longest a compiler or a C program under valgrind may take: a hang (a lost wake-up) fails.
const PATIENCE: Duration = Duration::from_secs(300);

/// Waits for `child` to exit; kills it and fails the test if it runs past [`PATIENCE`].
fn wait_bounded(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what}: still running after {PATIENCE:?} (a hang)");
        }
        // Checking for an exit, not synchronising: the outcome does not depend on this pause.
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(command: &mut Command, what: &str) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e} (is it installed?)"));
    let (mut stdout, mut stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || std::io::read_to_string(&mut stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(&mut stderr).unwrap_or_default());
    let status = wait_bounded(&mut child, what);
    let output = std::process::Output {
        status,
        stdout: out.join().unwrap().into_bytes(),
        stderr: err.join().unwrap().into_bytes(),
    };
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

const STRICT: &[&str] = &["-Wall", "-Wextra", "-pedantic", "-Werror"];

/// Compiles one C program of tests/c against the header and the shared library.
fn compile(source: &str) -> PathBuf {
    compile_from(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c"), source)
}

/// Compiles `dir/source` against the header and the shared library.
fn compile_from(dir: &Path, source: &str) -> PathBuf {
    let lib = built();
    let output = scratch(source.trim_end_matches(".c"));
    let source = dir.join(source);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    run(
        Command::new(cc)
            .arg("-std=c99")
            .args(STRICT)
            .arg("-I")
            .arg(include_dir())
            .arg(&source)
            .arg("-o")
            .arg(&output)
            .arg("-L")
            .arg(lib)
            .args(["-lhakuban_ffi", "-lpthread"])
            .arg(format!("-Wl,-rpath,{}", lib.display())),
        "compiling the C program",
    );
    output
}

fn valgrind(program: &Path, args: &[&str]) {
    run(
        Command::new("valgrind")
            .args(["--leak-check=full", "--error-exitcode=1", "--quiet"])
            .arg(program)
            .args(args)
            .env("RUST_BACKTRACE", "1"),
        &format!("valgrind {}", program.display()),
    );
}

/// The real router, on an ephemeral port.
struct Router {
    child: Child,
    url: String,
}

impl Router {
    fn start() -> Router {
        let binary = built().join("hakuban-router");
        let mut child = Command::new(binary)
            .args(["--bind", "ws://127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the router starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("router started")
                    && let Some(url) = line.split("url=").nth(1).and_then(|rest| rest.split_whitespace().next())
                {
                    let _ = tx.send(url.trim_matches('"').split('#').next().unwrap_or_default().to_string());
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(30)).expect("the router says where it listens");
        Router { child, url }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_header_compiles_on_its_own_as_c99_and_as_cpp() {
    let source = scratch("header_only.c");
    std::fs::write(&source, "#include \"hakuban.h\"\nint main(void) { return HAKUBAN_OK; }\n").unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    run(
        Command::new(cc).arg("-std=c99").args(STRICT).arg("-fsyntax-only").arg("-I").arg(include_dir()).arg(&source),
        "the header as C99",
    );
    run(
        Command::new(cxx)
            .args(["-x", "c++", "-std=c++11"])
            .args(STRICT)
            .arg("-fsyntax-only")
            .arg("-I")
            .arg(include_dir())
            .arg(&source),
        "the header as C++",
    );
}

#[test]
fn the_c_test_program_passes_under_valgrind() {
    let program = compile("hakuban_test.c");
    let router = Router::start();
    valgrind(&program, &[&router.url]);
}

#[test]
fn the_c_stress_program_passes_under_valgrind() {
    let program = compile("hakuban_stress.c");
    valgrind(&program, &[]);
}

#[test]
fn the_c_examples_talk_through_the_router() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/c");
    let (observer, exposer) = (compile_from(&examples, "observer.c"), compile_from(&examples, "exposer.c"));
    let router = Router::start();
    let mut exposer = Command::new(exposer).arg(&router.url).stdout(Stdio::null()).spawn().unwrap();
    let output = Command::new(observer).arg(&router.url).output().unwrap();
    assert!(output.status.success(), "observer: {}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "\"\u{1f980}\"\n");
    // The exposer leaves once its observer is gone (bounded: a hang fails the test).
    assert!(wait_bounded(&mut exposer, "the exposer").success());
}
