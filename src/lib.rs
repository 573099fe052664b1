//! Hosts the workspace's integration tests (`tests/`), UI tests (`ui-tests/`) and examples.

/// The README's code, compiled as a doc test so it cannot go stale.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
