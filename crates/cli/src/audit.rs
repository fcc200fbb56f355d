//! `estafette audit …`: what an auditor runs on a node's log directory (docs/AUDIT.md).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Subcommand;
use estafette_audit::reconcile::{NodeLog, reconcile};
use estafette_audit::replay::{Filter, describe};
use estafette_audit::{Entry, Trust, Verifier, proof, verify};
use estafette_packet::{Roster, SigningPublicKey};

use crate::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Check a log: every line, every checkpoint signature and consistency, every packet
    /// signature against the roster. Exit 0 only when all holds; else name the first bad line.
    Verify {
        /// The node's audit directory (holds log.jsonl and checkpoints/).
        dir: PathBuf,
        /// The network's signed roster: checks packet signatures and cosignatures, and gives the
        /// node's key. Needs --authority-key.
        #[arg(long, requires = "authority_key")]
        roster: Option<PathBuf>,
        /// The authority's public key (base64, or a file holding it) that signed the roster.
        #[arg(long)]
        authority_key: Option<String>,
        /// The log's C2SP verifier key (`estafette/<network>/<bureau>+<id>+<key>`), if no roster.
        #[arg(long)]
        key: Option<String>,
        /// Accept up to this many lines after the last checkpoint, covered by no signature (a
        /// running node's log, or one copied while the node ran). By default every line must
        /// be signed: a log whose checkpoints were deleted must not pass.
        #[arg(long, value_name = "LINES", default_value_t = 0)]
        allow_unsigned_tail: u64,
    },
    /// Print the log as a readable timeline.
    Replay {
        /// The node's audit directory.
        dir: PathBuf,
        /// Only entries about this packet id.
        #[arg(long)]
        packet: Option<String>,
        /// Only entries involving this bureau.
        #[arg(long)]
        bureau: Option<String>,
        /// Only entries at or after this UTC time (`2026-11-23T10:00:00Z`).
        #[arg(long)]
        since: Option<String>,
        /// Print the matching entries as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Print a C2SP tlog-proof that line N is in the log under its latest checkpoint.
    Prove {
        /// The node's audit directory.
        dir: PathBuf,
        /// The line number, from 1.
        #[arg(long)]
        line: u64,
    },
    /// Print a bureau's audit keys as C2SP verifier keys, from the roster: the log key (checks
    /// its checkpoints) or, with --cosigner, the key of its cosignatures on others' checkpoints.
    Key {
        /// The network's signed roster.
        #[arg(long)]
        roster: PathBuf,
        /// The authority's public key (base64, or a file holding it).
        #[arg(long)]
        authority_key: String,
        /// The bureau.
        #[arg(long)]
        bureau: String,
        /// The cosignature key (type 0x04) instead of the log key (type 0x01).
        #[arg(long)]
        cosigner: bool,
    },
    /// Cross-check several nodes' logs: hand-overs on both sides, receipts for deliveries,
    /// witnessed checkpoints still matching. Exit 0 only when they agree.
    Reconcile {
        /// Audit directories of the nodes.
        #[arg(required = true, num_args = 2..)]
        dirs: Vec<PathBuf>,
    },
}

fn authority(arg: &str) -> anyhow::Result<SigningPublicKey> {
    let text = if Path::new(arg).is_file() {
        std::fs::read_to_string(arg).with_context(|| format!("reading {arg}"))?
    } else {
        arg.to_owned()
    };
    // A key file may carry comments; the key is its last non-empty line.
    let key = text
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or_default();
    key.parse()
        .map_err(|e| anyhow!("--authority-key: not an Ed25519 public key: {e}"))
}

pub(crate) fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Verify {
            dir,
            roster,
            authority_key,
            key,
            allow_unsigned_tail,
        } => verify_cmd(
            &dir,
            roster.as_deref(),
            authority_key.as_deref(),
            key.as_deref(),
            allow_unsigned_tail,
        ),
        Command::Replay {
            dir,
            packet,
            bureau,
            since,
            json,
        } => {
            let since_ms = since
                .map(|s| {
                    estafette_audit::entry::parse_utc(&s).ok_or_else(|| {
                        anyhow!("--since {s}: expected a UTC time like 2026-11-23T10:00:00Z")
                    })
                })
                .transpose()
                .map_err(Failure::usage)?;
            let filter = Filter {
                packet,
                bureau,
                since_ms,
            };
            let (lines, _) = estafette_audit::log::read_lines(&dir)?;
            for (i, line) in lines.iter().enumerate() {
                let entry: Entry = serde_json::from_slice(line)
                    .with_context(|| format!("line {}: not an audit entry", i + 1))?;
                if filter.matches(&entry) {
                    if json {
                        println!("{}", String::from_utf8_lossy(line));
                    } else {
                        println!("{}", describe(&entry));
                    }
                }
            }
            Ok(())
        }
        Command::Key {
            roster,
            authority_key,
            bureau,
            cosigner,
        } => {
            let a = authority(&authority_key).map_err(Failure::usage)?;
            let roster = estafette_node::network::load_roster(&roster, &a)?;
            let code = estafette_packet::BureauCode::new(&bureau)
                .map_err(|e| Failure::usage(anyhow!("--bureau {bureau}: {e}")))?;
            let entry = roster
                .bureau(&code)
                .ok_or_else(|| Failure::usage(anyhow!("bureau {code} is not in the roster")))?;
            let v = Verifier {
                name: estafette_audit::log_origin(&roster.network, &code),
                kind: if cosigner {
                    estafette_audit::note::TYPE_COSIGNATURE
                } else {
                    estafette_audit::note::TYPE_ED25519
                },
                key: entry.signing_key.0,
            };
            println!("{}", v.vkey());
            Ok(())
        }
        Command::Prove { dir, line } => {
            print!("{}", proof::prove(&dir, line)?);
            Ok(())
        }
        Command::Reconcile { dirs } => {
            let logs = dirs
                .iter()
                .map(|d| NodeLog::read(d))
                .collect::<Result<Vec<_>, _>>()?;
            // One node's log given twice (the same directory or a copy) would "agree" with
            // itself and hide that another log is missing.
            for (i, a) in logs.iter().enumerate() {
                if let Some(b) = logs[..i].iter().find(|b| b.origin == a.origin) {
                    return Err(Failure::usage(anyhow!(
                        "{}'s log is given twice ({} and {}): reconcile compares the logs of different nodes",
                        a.bureau,
                        b.dir.display(),
                        a.dir.display()
                    )));
                }
            }
            let gaps = reconcile(&logs);
            let names: Vec<&str> = logs.iter().map(|l| l.bureau.as_str()).collect();
            if gaps.is_empty() {
                println!(
                    "{} logs agree ({}): every hand-over is on both sides, every delivery's receipt reached its origin",
                    logs.len(),
                    names.join(", ")
                );
                return Ok(());
            }
            for g in &gaps {
                println!("{g}");
            }
            Err(anyhow!(
                "{} gaps between the logs of {}",
                gaps.len(),
                names.join(", ")
            )
            .into())
        }
    }
}

fn verify_cmd(
    dir: &Path,
    roster: Option<&Path>,
    authority_key: Option<&str>,
    key: Option<&str>,
    allow_unsigned_tail: u64,
) -> Result<(), Failure> {
    let roster: Option<Roster> = match (roster, authority_key) {
        (Some(path), Some(a)) => {
            let a = authority(a).map_err(Failure::usage)?;
            Some(estafette_node::network::load_roster(path, &a)?)
        }
        _ => None,
    };
    let key = key
        .map(Verifier::from_vkey)
        .transpose()
        .map_err(|e| Failure::usage(anyhow!("--key: {e}")))?;
    if roster.is_none() && key.is_none() {
        return Err(Failure::usage(anyhow!(
            "give the log's key (--key) or the roster (--roster with --authority-key)"
        )));
    }
    let trust = Trust {
        log_key: key.as_ref(),
        roster: roster.as_ref(),
    };
    match verify(dir, trust)? {
        Ok(report) if report.unsigned_tail > allow_unsigned_tail => {
            let signed = report.lines - report.unsigned_tail;
            Err(anyhow!(
                "{}: {} of its {} lines are covered by no checkpoint ({}); an unsigned log proves nothing. \
                 If the node is running or was killed, its last lines may not be signed yet: \
                 --allow-unsigned-tail {} accepts them",
                dir.display(),
                report.unsigned_tail,
                report.lines,
                if signed == 0 {
                    "it has no checkpoint at all".to_owned()
                } else {
                    format!("the last checkpoint signs the first {signed}")
                },
                report.unsigned_tail
            )
            .into())
        }
        Ok(report) => {
            println!(
                "{}: {} lines, {} checkpoints, {} packet signatures checked: the log is intact",
                report.origin,
                report.lines,
                report.checkpoints.len(),
                report.packet_signatures
            );
            for cp in &report.checkpoints {
                let witnesses: Vec<String> =
                    cp.witnesses.iter().map(|(c, _)| c.to_string()).collect();
                println!(
                    "  checkpoint {:>8}  root {}  {}",
                    cp.size,
                    B64.encode(cp.root),
                    if witnesses.is_empty() {
                        "not co-signed".to_owned()
                    } else {
                        format!("co-signed by {}", witnesses.join(", "))
                    }
                );
            }
            if report.unsigned_tail > 0 {
                println!(
                    "  {} lines after the last checkpoint are not signed (accepted: --allow-unsigned-tail {allow_unsigned_tail})",
                    report.unsigned_tail
                );
            }
            Ok(())
        }
        Err(problem) => Err(anyhow!("{}: {problem}", dir.display()).into()),
    }
}
