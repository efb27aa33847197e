//! Escapes: which container cgroup a pid namespace (or a hostPID pod's
//! pid) belongs to, and the `escaped_process` finding when a process of a pod
//! moves to a cgroup outside it.

use super::*;

impl Engine {
    pub(super) fn owner_of(&self, pid_ns: Option<u32>) -> Option<&str> {
        let pid_ns = pid_ns.unwrap_or(0);
        (pid_ns != 0 && pid_ns != self.start.host_pid_ns)
            .then(|| self.live_owner(pid_ns))
            .flatten()
    }

    /// The container a pid namespace was seen in, while its cgroup lives.
    /// A namespace outlives its container's cgroup only while a process
    /// in it does, and the runtime keeps a container whose init lives;
    /// once the namespace is freed the kernel reuses its inode number, so
    /// an entry whose cgroup is gone is a dead container's.
    pub(super) fn live_owner(&self, pid_ns: u32) -> Option<&str> {
        let owner = self.owners.get(&pid_ns)?;
        self.tree
            .live()
            .any(|(_, n)| n.path == *owner)
            .then_some(owner.as_str())
    }

    /// `moved`: the task as the kernel read it at the move, when it could
    /// (the record may be read a tick later, when /proc no longer has it).
    #[expect(clippy::too_many_arguments, reason = "one move's facts, named")]
    pub(super) fn on_attach(
        &mut self,
        pid: u32,
        comm: &str,
        path: &str,
        boot_ns: u64,
        moved: Option<MovedTask>,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        let kube = pods::parse_cgroup_path(path);
        let in_container = kube.as_ref().is_some_and(|k| k.level == Level::Container);
        let in_pod = kube.as_ref().is_some_and(|k| k.pod.is_some());
        // Only two cases need the namespaces: a process joining a container
        // (learn its pid namespace) and one leaving every pod (an escape?).
        // A cgroup the container made below its own (a unit of a systemd
        // inside) is the container's: processes are tied to the container's
        // own cgroup, which lives as long as the container.
        let own = pods::container_cgroup(path).unwrap_or(path).to_string();
        if in_container {
            self.remember_container_pid(pid, &own, boot_ns);
        }
        if in_pod && !in_container {
            return;
        }
        let pid_ns = match moved {
            Some(m) => m.pid_ns,
            None => match obs.namespaces(pid) {
                Some(ns) => ns.pid_ns,
                None => return,
            },
        };
        if pid_ns == self.start.host_pid_ns {
            if !in_container {
                if let Some(owner) = self.host_pid_owner(pid, moved, obs) {
                    self.pod_of_pid.remove(&pid);
                    self.escaped_by_pid.insert(pid, owner.clone());
                    self.escape_detected(pid, comm, path, boot_ns, owner, obs, out);
                }
            }
            return;
        }
        if in_container {
            // The latest container wins: the kernel reuses a namespace's
            // inode number once the namespace is gone, so an older entry
            // may name a dead container. (Containers sharing a pod's pid
            // namespace are in one pod either way.)
            self.owners.insert(pid_ns, own);
            return;
        }
        let Some(owner) = self.live_owner(pid_ns).map(str::to_owned) else {
            return;
        };
        self.escape_detected(pid, comm, path, boot_ns, owner, obs, out);
    }

    /// A process of a hostPID pod leaving every pod: the container it was
    /// seen joining (or, for one forked there since, its parent's), when
    /// the process at that pid is still the one seen: a pid the kernel
    /// reused for a later process is no escape.
    pub(super) fn host_pid_owner(
        &self,
        pid: u32,
        moved: Option<MovedTask>,
        obs: &mut dyn Observe,
    ) -> Option<String> {
        // /proc's start time is in clock ticks (10 ms at most).
        const TICK_NS: u64 = 10_000_000;
        let me = match moved {
            Some(m) => ProcStart {
                start_ns: m.start_ns,
                ppid: m.ppid,
            },
            None => obs.proc_start(pid)?,
        };
        if let Some((cgroup, at)) = self.pod_of_pid.get(&pid) {
            return (me.start_ns <= at.saturating_add(TICK_NS)).then(|| cgroup.clone());
        }
        let (cgroup, at) = self.pod_of_pid.get(&me.ppid)?.clone();
        let parent = match moved {
            Some(m) => ProcStart {
                start_ns: m.parent_start_ns,
                ppid: 0,
            },
            None => obs.proc_start(me.ppid)?,
        };
        (parent.start_ns <= at.saturating_add(TICK_NS) && me.start_ns.saturating_add(TICK_NS) >= at)
            .then_some(cgroup)
    }

    pub(super) fn remember_container_pid(&mut self, pid: u32, path: &str, boot_ns: u64) {
        // Bounded: pids of containers that are gone go first.
        if self.pod_of_pid.len() >= 1 << 18 {
            let tree = &self.tree;
            self.pod_of_pid
                .retain(|_, (cgroup, _)| tree.live().any(|(_, n)| n.path == *cgroup));
            if self.pod_of_pid.len() >= 1 << 18 {
                self.pod_of_pid.clear();
            }
        }
        self.pod_of_pid.insert(pid, (path.to_string(), boot_ns));
    }

    /// The `escape_detected` finding: `pid` left its pod (`owner`, the
    /// container cgroup it belongs to) for `path`.
    #[expect(clippy::too_many_arguments, reason = "one finding's facts, named")]
    pub(super) fn escape_detected(
        &mut self,
        pid: u32,
        comm: &str,
        path: &str,
        boot_ns: u64,
        owner: String,
        obs: &mut dyn Observe,
        out: &mut Vec<Line>,
    ) {
        let identity = Identity::of_path(&owner);
        let identity = identity.clone().named(&self.names(&identity, obs));
        let f = Finding {
            summary: wording::escape_detected(
                comm,
                pid,
                identity.pod.as_ref(),
                identity.container.as_ref(),
                path,
            ),
            pod: identity.pod,
            container: identity.container,
            process: Some(Process {
                pid,
                // From the attach tracepoint's own record: always read.
                comm: Some(comm.to_string()),
            }),
            pod_cgroup: Some(owner),
            ..Finding::new(
                FindingKind::EscapeDetected,
                wall_time(boot_ns, self.start.boot_to_wall_ns),
                path.to_string(),
            )
        };
        out.push(Line::Finding(f));
    }
}
