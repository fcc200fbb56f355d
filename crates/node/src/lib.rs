//! # estafette-node
//!
//! The node side of Estafette. So far: the files a node keeps (secrets at mode 0600, refused when
//! others can read them; public files written atomically) and the network authority's tooling
//! (`network init`, `add-bureau`, roster loading). The daemon (config, router, delivery engine,
//! local API) grows here next; see `docs/ARCHITECTURE.md`.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod api;
pub mod audit;
pub mod check;
pub mod client;
pub mod config;
pub mod engine;
pub mod files;
pub(crate) mod metrics;
pub mod network;
pub mod node;
