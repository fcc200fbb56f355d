//! Helpers: run the built binary with a bounded time.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `estafette ARGS…`, killing it if it takes longer than a minute.
pub(crate) fn estafette(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_estafette"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the estafette binary starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("estafette {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `estafette` with a path argument.
pub(crate) fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Asserts success and returns stdout.
pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts failure with `code` and returns stderr.
pub(crate) fn fails(out: &Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    err
}

pub(crate) use estafette_testkit::{Cluster, TestNet, eventually, within};

/// The `estafette` binary under test.
pub(crate) fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_estafette"))
}

/// Starts `code`'s node as a process (`estafette node run`), logging next to its config.
pub(crate) fn spawn(c: &Cluster, code: &str) -> estafette_testkit::NodeProcess {
    spawn_with_env(c, code, &[])
}

/// Like [`spawn`], with extra environment variables.
pub(crate) fn spawn_with_env(
    c: &Cluster,
    code: &str,
    env: &[(&str, &std::ffi::OsStr)],
) -> estafette_testkit::NodeProcess {
    let config = c.write_config(code);
    let log = config.with_file_name("node.log");
    estafette_testkit::NodeProcess::start_with_env(exe(), &config, &log, env)
}

/// Waits until `code`'s local API answers.
pub(crate) async fn wait_up(c: &Cluster, code: &str) {
    let client = c.client(code);
    eventually(30, "node start", || async {
        client.get("/healthz").await.ok().map(|_| ())
    })
    .await;
}
