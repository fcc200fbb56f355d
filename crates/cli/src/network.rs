//! `estafette network …`: the authority's commands.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context as _;
use clap::Subcommand;
use estafette_node::network::{
    DEFAULT_CA_DAYS, DEFAULT_CERT_DAYS, NetworkDir, NetworkError, NewBureau,
};
use estafette_packet::{BureauCode, GroupName, Roster};

use crate::Failure;

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a network: the authority's signing key, the TLS CA and an empty signed roster.
    Init {
        /// Directory to create (must not exist, or be empty).
        #[arg(long)]
        dir: PathBuf,
        /// Network name: one lowercase DNS label, e.g. `example-net`.
        #[arg(long)]
        name: String,
        /// Lifetime of the CA certificate, in days.
        #[arg(long, default_value_t = DEFAULT_CA_DAYS)]
        ca_days: u32,
    },
    /// Add a bureau: identity keys, a TLS certificate from the CA, and a roster entry.
    AddBureau {
        /// The network directory.
        #[arg(long)]
        dir: PathBuf,
        /// Bureau code, e.g. `BR` or `UA-NCB`.
        #[arg(long)]
        code: String,
        /// Where its node listens, HOST:PORT (omit for a bureau reached only through a hub).
        #[arg(long)]
        addr: Option<String>,
        /// Display name (default: "Bureau CODE").
        #[arg(long)]
        name: Option<String>,
        /// A group to join (created if new); repeat for several.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Lifetime of its TLS certificate, in days.
        #[arg(long, default_value_t = DEFAULT_CERT_DAYS)]
        cert_days: u32,
    },
    /// Issue a bureau a new TLS key and certificate (before the old one expires: both are
    /// valid meanwhile, so peers accept the node before and after it restarts onto the new one).
    RenewCert {
        /// The network directory.
        #[arg(long)]
        dir: PathBuf,
        /// Bureau code.
        #[arg(long)]
        code: String,
        /// Lifetime of the new certificate, in days.
        #[arg(long, default_value_t = DEFAULT_CERT_DAYS)]
        cert_days: u32,
    },
    /// Revoke a bureau's key: nodes refuse its packets and close its connections once they
    /// load the new roster (SIGHUP).
    Revoke {
        /// The network directory.
        #[arg(long)]
        dir: PathBuf,
        /// Bureau code.
        #[arg(long)]
        code: String,
        /// Why, for people reading the roster.
        #[arg(long, default_value = "revoked by the authority")]
        reason: String,
    },
    /// Print the verified roster.
    Show {
        /// The network directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

pub(crate) fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Init { dir, name, ca_days } => {
            let net = NetworkDir::new(&dir);
            net.init(&name, SystemTime::now(), ca_days)
                .map_err(classify)?;
            println!("created network {name} in {}", dir.display());
            println!(
                "authority public key (pin it in every node's config): {}",
                net.authority_public().map_err(classify)?
            );
            println!(
                "next: estafette network add-bureau --dir {} --code CODE --addr HOST:PORT",
                dir.display()
            );
            Ok(())
        }
        Command::AddBureau {
            dir,
            code,
            addr,
            name,
            groups,
            cert_days,
        } => {
            let code = BureauCode::new(&code)
                .with_context(|| format!("--code {code:?}"))
                .map_err(Failure::usage)?;
            let groups = groups
                .iter()
                .map(|g| GroupName::new(g).with_context(|| format!("--group {g:?}")))
                .collect::<anyhow::Result<Vec<_>>>()
                .map_err(Failure::usage)?;
            let net = NetworkDir::new(&dir);
            let new = NewBureau {
                code: code.clone(),
                name,
                address: addr,
                groups,
                cert_days,
            };
            let roster = net.add_bureau(&new, SystemTime::now()).map_err(classify)?;
            println!(
                "added {code} to {}: roster version {}, keys in {}",
                roster.network,
                roster.version,
                net.bureau_dir(&code).display()
            );
            Ok(())
        }
        Command::RenewCert {
            dir,
            code,
            cert_days,
        } => {
            let code = BureauCode::new(&code)
                .with_context(|| format!("--code {code:?}"))
                .map_err(Failure::usage)?;
            let net = NetworkDir::new(&dir);
            net.renew_tls(&code, SystemTime::now(), cert_days)
                .map_err(classify)?;
            println!(
                "issued {code} a new TLS certificate for {cert_days} days in {}; install tls.pem and tls.key on its node and restart it",
                net.bureau_dir(&code).display()
            );
            Ok(())
        }
        Command::Revoke { dir, code, reason } => {
            let code = BureauCode::new(&code)
                .with_context(|| format!("--code {code:?}"))
                .map_err(Failure::usage)?;
            let net = NetworkDir::new(&dir);
            let roster = net
                .revoke(&code, &reason, SystemTime::now())
                .map_err(classify)?;
            println!(
                "revoked {code}'s key in {}: roster version {}; copy {} to every node and send it SIGHUP",
                roster.network,
                roster.version,
                net.roster_path().display()
            );
            Ok(())
        }
        Command::Show { dir } => {
            let net = NetworkDir::new(&dir);
            let roster = net.roster().map_err(classify)?;
            print!(
                "{}",
                render(
                    &roster,
                    &net.authority_public().map_err(classify)?.to_string()
                )
            );
            Ok(())
        }
    }
}

/// Errors the operator can fix by changing the command are usage errors (exit 64).
fn classify(e: NetworkError) -> Failure {
    match e {
        NetworkError::Exists(_)
        | NetworkError::NotANetwork(_)
        | NetworkError::DuplicateBureau(_)
        | NetworkError::UnknownBureau(_)
        | NetworkError::Name { .. }
        | NetworkError::Address(_) => Failure::usage(e),
        e => Failure::from(e),
    }
}

/// The roster as a readable table.
pub(crate) fn render(roster: &Roster, authority: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "network {}  ·  roster version {}  ·  issued {}  ·  signature verified",
        roster.network,
        roster.version,
        format_ms(roster.issued_at_ms)
    );
    let _ = writeln!(out, "authority key: {authority}\n");
    let _ = writeln!(
        out,
        "{:<8} {:<24} {:<22} {:<46} ENCRYPTION KEY (X25519)",
        "CODE", "NAME", "ADDRESS", "SIGNING KEY (ED25519)"
    );
    for b in &roster.bureaus {
        let _ = writeln!(
            out,
            "{:<8} {:<24} {:<22} {:<46} {}",
            b.code,
            b.name,
            b.address.as_deref().unwrap_or("(via a hub)"),
            b.signing_key,
            b.encryption_key
        );
    }
    if roster.bureaus.is_empty() {
        let _ = writeln!(out, "(no bureaus yet)");
    }
    let _ = writeln!(out, "\ngroups:");
    for g in &roster.groups {
        let members: Vec<&str> = g.members.iter().map(BureauCode::as_str).collect();
        let _ = writeln!(out, "  {:<12} {}", g.name, members.join(" "));
    }
    if roster.groups.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    let _ = writeln!(out, "\nrevoked keys:");
    for r in &roster.revoked {
        let _ = writeln!(
            out,
            "  {}  since {}  {}",
            r.key,
            format_ms(r.revoked_at_ms),
            r.reason
        );
    }
    if roster.revoked.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    out
}

/// RFC 3339 UTC, to the second.
pub(crate) fn format_ms(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}
