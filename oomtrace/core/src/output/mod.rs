//! Everything oomtrace prints: the output types, their sentences, and the
//! sinks that write them.

pub mod sink;
#[cfg(test)]
pub mod test_kit;
pub mod verdict;
pub mod wording;
