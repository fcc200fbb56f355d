//! End-to-end tests of the `estafette` binary and the example files. One test binary, a module
//! per area (as ripgrep does), so the workspace links it once.

mod audit;
mod config;
mod faults;
mod net;
mod network;
mod node;
mod service;
mod util;
