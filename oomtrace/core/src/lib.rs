//! oomtrace's core: everything between a kernel record and an output line
//! that needs no eBPF toolchain. `cargo test -p oomtrace-core` runs on any
//! machine with a stable rustc. See ARCHITECTURE.md for the map.
//!
//! The rooms, lowest first; a room imports only from rooms above it in
//! this list:
//! - [`kernel`]: what the kernel sends and offers (wire records, BTF,
//!   tracefs, offsets, the probe table).
//! - [`logs`]: kernel text (the OOM report reader, /dev/kmsg, `explain`'s
//!   readers) and oomtrace's own state file.
//! - [`node`]: what the machine says (the cgroup tree, pod identity and the
//!   runtimes' names, node memory, the kubelet's config and log) and the one
//!   I/O port that reads it, [`node::observe::Observe`].
//! - [`output`]: every output type, every sentence, the sinks.
//! - [`rules`]: the pure rules that decide verdicts and findings.
//! - [`engine`]: dispatch of inputs to the rules, the kernel-log wait, the
//!   fixed read order, and recordings that replay it.

pub mod engine;
pub mod kernel;
pub mod logs;
pub mod node;
pub mod output;
pub mod rules;
