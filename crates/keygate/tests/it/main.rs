//! keygate's integration tests: one binary, one module per feature. They
//! drive the real router over real sockets, with real SQLite and PostgreSQL
//! and the real mock provider.

mod support;

mod admin;
mod store;
mod streaming;
