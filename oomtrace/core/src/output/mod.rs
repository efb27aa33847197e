//! Everything oomtrace prints: the output types, their sentences, and the
//! sinks that write them.

pub mod sink;
pub mod verdict;
pub mod wording;
