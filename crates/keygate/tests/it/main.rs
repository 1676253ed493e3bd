//! keygate's integration tests: one binary, one module per feature. They
//! drive the real router over real sockets, with real SQLite and PostgreSQL
//! and the real mock provider.

// Test support code states its expectations with unwrap, like the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod admin;
mod alerts;
mod anomaly;
mod audit;
mod counters;
mod dashboard_sessions;
mod dashboard_store;
mod failover;
mod governance;
mod leaks;
mod lifecycle;
mod limits;
mod metrics;
mod oauth;
mod policy;
mod provider_credentials;
mod routing;
mod scan;
mod service_accounts;
mod store;
mod streaming;
mod tenancy;
mod translation;
mod trust;
mod usage;
