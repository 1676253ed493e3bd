//! Converse codec tests.
