//! Hosts the integration tests, UI tests and examples of the workspace.
