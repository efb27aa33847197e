//! What the kernel sends and offers: the wire records of the BPF programs,
//! the kernel's BTF, tracefs formats, field offsets and the probe table.

pub mod btf;
pub mod event;
pub mod hooks;
pub mod offsets;
pub mod tracefs;
