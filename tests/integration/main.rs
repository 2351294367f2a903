//! poolscope's integration tests, one binary (one link of tokio and ratatui, not one per
//! file): real threads, real processes, real programs and recordings, and the dashboard
//! drawn headless. Each module is one area; `common` holds what they share.
// A test that panics on a bad value is what we want: unwrap, expect and unchecked time
// subtraction fail loudly here. Exact float comparisons compare values computed exactly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::unchecked_time_subtraction,
    clippy::float_cmp,
    missing_docs
)]

mod app_keys;
mod cli;
mod cluster;
mod command_line;
mod common;
mod coordinator;
mod cpu;
mod dashboard;
mod event_loop;
mod explore;
mod faults;
mod hardening;
mod hostile;
mod insight;
mod kernel;
mod key_table;
mod paste;
mod probe_pools;
mod process_pool;
mod readme;
mod replay;
mod rust_probe;
mod sources;
mod thread_pool;
mod watch;
