//! Tests of the mock provider.
