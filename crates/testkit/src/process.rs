//! Node processes for fault-injection tests, and the seeded randomness that drives them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A node running as its own process (`estafette node run --config FILE`).
pub struct NodeProcess {
    exe: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
    env: Vec<(String, std::ffi::OsString)>,
}

impl NodeProcess {
    /// Starts `exe node run --config config`, its log appended to `log`.
    pub fn start(exe: &Path, config: &Path, log: &Path) -> Self {
        Self::start_with_env(exe, config, log, &[])
    }

    /// Like [`NodeProcess::start`], with extra environment variables (e.g. `NOTIFY_SOCKET`).
    pub fn start_with_env(
        exe: &Path,
        config: &Path,
        log: &Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        let mut p = Self {
            exe: exe.to_owned(),
            config: config.to_owned(),
            log: log.to_owned(),
            child: None,
            starts: 0,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        p.restart();
        p
    }

    /// Sends a signal by name (`HUP`, `TERM`, …) to the running process.
    pub fn signal(&self, name: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{name}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// (Re)starts the process; it must not be running.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "node already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(&self.exe)
            .args(["node", "run", "--config"])
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the estafette binary starts");
        self.child = Some(child);
        self.starts += 1;
    }

    /// The process's resident memory now and at its peak, in KiB (`VmRSS`, `VmHWM` from
    /// `/proc`); `None` if it is not running.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// CPU time the process has used so far, user plus system (`/proc/PID/stat`, in the
    /// kernel's fixed 100 ticks per second); `None` if it is not running.
    pub fn cpu_time(&self) -> Option<Duration> {
        let pid = self.child.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
        let rest = &stat[stat.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        // utime and stime are fields 14 and 15, that is 12 and 13 after the name.
        let utime: u64 = fields.nth(11)?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        Some(Duration::from_millis((utime + stime) * 10))
    }

    /// SIGKILL: no shutdown, no flush; what the store had committed is all that survives.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits up to `grace` for a clean exit; returns its exit code.
    pub fn terminate(&mut self, grace: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Whether it is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// How many times it was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The last `n` lines of its log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A small seeded random source (SplitMix64) for fault schedules. The seed comes from
/// `ESTAFETTE_SEED` or the clock, and is printed, so a failing run can be replayed.
#[derive(Debug, Clone)]
pub struct Seed {
    seed: u64,
    state: u64,
}

impl Seed {
    /// A seed for the test `name`; printed to stderr.
    pub fn new(name: &str) -> Self {
        let seed = std::env::var("ESTAFETTE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{name}: seed {seed} (rerun with ESTAFETTE_SEED={seed})");
        Self { seed, state: seed }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration uniformly in `[lo, hi]`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = u64::try_from((hi - lo).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        lo + Duration::from_millis(self.next_u64() % span)
    }
}
