//! What the kernel sends and offers: the wire records of the BPF programs,
//! the kernel's BTF, its clock as output writes it, tracefs formats, field offsets and the probe table.

pub mod btf;
pub mod clock;
pub mod event;
pub mod hooks;
pub mod offsets;
#[cfg(test)]
pub mod test_kit;
pub mod tracefs;
