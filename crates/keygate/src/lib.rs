//! keygate: a self-hosted AI API gateway built around credentials.
//!
//! One keygate key reaches every model the operator configured; provider keys
//! never leave the server; every request is metered in a durable ledger.
#![forbid(unsafe_code)]

pub mod admin;
pub mod alerts;
pub mod anomaly;
pub mod auth;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod dashboard;
pub mod error;
pub mod leaks;
pub mod ledger;
pub mod lifecycle;
pub mod mock;
pub mod policy;
pub mod providers;
pub mod proxy;
pub mod scan;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod translate;
