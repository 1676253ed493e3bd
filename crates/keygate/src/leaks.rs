//! Leak defence on the gateway: reports of leaked keys from a
//! secret-scanning partner ([`report`]), and the exposure report of
//! `keygate incident` ([`incident`]).

pub mod incident;
pub mod report;
