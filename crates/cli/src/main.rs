//! `estafette`: the one command. Thin: parse arguments, call the libraries, map errors to exit
//! codes (64 for usage and configuration errors, 1 for everything else).

#![forbid(unsafe_code)]

mod audit;
mod demo;
mod network;
mod node;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a bad command line or configuration (sysexits `EX_USAGE`).
const EX_USAGE: u8 = 64;

/// Estafette: a secure store-and-forward message network for police and judicial bureaus.
#[derive(Debug, Parser)]
#[command(name = "estafette", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create and manage a network: authority key, CA, roster, bureaus.
    Network {
        #[command(subcommand)]
        command: network::Command,
    },
    /// Run a node.
    Node {
        #[command(subcommand)]
        command: node::NodeCommand,
    },
    /// Send a message through the local node.
    Send(node::SendArgs),
    /// Read the local node's inbox.
    Inbox {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        command: Option<node::InboxCommand>,
    },
    /// The local node's peers and queues, or one sent message's progress.
    Status {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Show this sent message's progress per recipient.
        #[arg(long)]
        message: Option<String>,
    },
    /// Verify, replay, prove and reconcile audit logs.
    Audit {
        #[command(subcommand)]
        command: audit::Command,
    },
    /// Start the example network (BR, CV, GH, NG) on loopback and exchange case notices.
    Demo {
        /// Where to build it (default: a fresh temporary directory, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// An error with its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: EX_USAGE,
            error: error.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            code: 1,
            error: e.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Network { command } => network::run(command),
        Command::Node { command } => node::run(command),
        Command::Send(args) => node::send(args),
        Command::Inbox {
            config,
            json,
            command,
        } => node::inbox(&config, command, json),
        Command::Status {
            config,
            json,
            message,
        } => node::status(&config, json, message),
        Command::Audit { command } => audit::run(command),
        Command::Demo { dir } => demo::run(dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("estafette: error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}
