//! The pure rules: each takes observations and decides a verdict or a
//! finding. No I/O here; the engine feeds them.

pub mod attribution;
pub mod audit;
pub mod from_log;
pub mod lowered_limit;
pub mod misreport;
pub mod near_oom;
pub mod stops;
pub mod userspace;
