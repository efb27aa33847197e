//! What the machine says: the cgroup tree, pod identity and the runtimes'
//! names, node memory, the kubelet's config and log, and the one I/O port
//! (`observe::Observe`) through which the engine reads all of it.

pub mod cgroup;
pub mod files;
pub mod kubelet;
pub mod kubelet_log;
pub mod node_memory;
pub mod observe;
pub mod pods;
