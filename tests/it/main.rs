//! The integration tests: one test binary (`cargo test --test it`), one
//! module per concern. Run one concern with a name filter on its module
//! path, e.g. `cargo test --test it linux_live` or `cargo test --test it
//! churn::`.
//!
//! The tests that run the real binary need the example: a plain `cargo
//! test` builds it, `cargo test --test it` does not (`linux_live` builds it
//! itself).

mod util;

mod acceptance_script;
mod attribution;
mod churn;
mod cli;
mod deploy_cli;
mod deploy_docs;
mod dialect_fixtures;
mod dialect_fixtures_win;
mod dialects;
#[cfg(target_os = "linux")]
mod exposure;
#[cfg(target_os = "linux")]
mod full_disk;
mod hostile;
#[cfg(target_os = "linux")]
mod linux_live;
mod properties;
mod replay_bad_input;
mod replay_cli;
mod replay_mechanics;
mod replay_real;
mod report;
mod service;
mod tamper;
mod verdicts;
