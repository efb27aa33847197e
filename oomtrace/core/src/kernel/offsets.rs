//! The load-time globals of the eBPF object: struct offsets from the running
//! kernel's BTF and tracepoint field offsets from tracefs `format` files.
//! Kernel differences are handled here, by data, never by version checks.

use std::path::Path;

use oomtrace_common::FIELD_ABSENT;

use crate::{kernel::btf::Btf, kernel::tracefs};

/// One global, named as in `oomtrace-ebpf/src/globals.rs`.
pub type Global = (&'static str, u32);

/// Struct offsets the BTF-reading programs need. `Err` names what the
/// kernel's BTF lacked; the programs then run without memcg ancestry.
pub fn from_btf(btf: &Btf) -> Result<Vec<Global>, crate::kernel::btf::BtfError> {
    let m = |s: &str, p: &str| btf.member_offset(s, p);
    let rss = btf.rss_layout()?;
    let e = |v: &str| -> Result<u32, crate::kernel::btf::BtfError> {
        Ok(btf.enum_value("", v)? as u32)
    };
    let memcg_css = m("mem_cgroup", "css")?;
    Ok(vec![
        ("TASK_TGID", m("task_struct", "tgid")?),
        ("TASK_PID", m("task_struct", "pid")?),
        ("TASK_COMM", m("task_struct", "comm")?),
        ("TASK_CGROUPS", m("task_struct", "cgroups")?),
        ("TASK_SIGNAL", m("task_struct", "signal")?),
        ("TASK_MM", m("task_struct", "mm")?),
        ("TASK_THREAD_PID", m("task_struct", "thread_pid")?),
        ("TASK_NSPROXY", m("task_struct", "nsproxy")?),
        ("TASK_REAL_PARENT", m("task_struct", "real_parent")?),
        ("PID_LEVEL", m("pid", "level")?),
        ("PID_NUMBERS", m("pid", "numbers")?),
        ("UPID_SIZE", btf.struct_size("upid")?),
        ("UPID_NR", m("upid", "nr")?),
        ("UPID_NS", m("upid", "ns")?),
        ("PIDNS_INUM", m("pid_namespace", "ns.inum")?),
        ("NSPROXY_MNT_NS", m("nsproxy", "mnt_ns")?),
        ("MNTNS_INUM", m("mnt_namespace", "ns.inum")?),
        ("SIGNAL_OOM_SCORE_ADJ", m("signal_struct", "oom_score_adj")?),
        ("SIGNAL_OOM_MM", m("signal_struct", "oom_mm")?),
        ("MM_TOTAL_VM", m("mm_struct", "total_vm")?),
        ("MM_RSS_BASE", rss.base),
        ("MM_RSS_STRIDE", rss.stride),
        ("MM_RSS_INNER", rss.inner),
        ("RSS_FILE_IDX", e("MM_FILEPAGES")?),
        ("RSS_ANON_IDX", e("MM_ANONPAGES")?),
        ("RSS_SHMEM_IDX", e("MM_SHMEMPAGES")?),
        ("CSS_SET_SUBSYS", m("css_set", "subsys")?),
        (
            "MEMORY_CGRP_ID",
            btf.enum_value("cgroup_subsys_id", "memory_cgrp_id")? as u32,
        ),
        ("CSS_CGROUP", m("cgroup_subsys_state", "cgroup")?),
        ("CSS_PARENT", m("cgroup_subsys_state", "parent")?),
        ("CGROUP_KN", m("cgroup", "kn")?),
        ("KN_ID", m("kernfs_node", "id")?),
        ("CGROUP_LEVEL", m("cgroup", "level")?),
        ("CGROUP_ROOT", m("cgroup", "root")?),
        ("ROOT_HIERARCHY_ID", m("cgroup_root", "hierarchy_id")?),
        ("MEMCG_CSS", memcg_css),
        ("MEMCG_MEMORY", m("mem_cgroup", "memory")?),
        ("PC_USAGE", m("page_counter", "usage")?),
        ("PC_MAX", m("page_counter", "max")?),
        ("KSI_CODE", m("kernel_siginfo", "si_code")?),
        ("OC_MEMCG", m("oom_control", "memcg")?),
        ("OC_CONSTRAINT", m("oom_control", "constraint")?),
        ("BTF_READY", 1),
    ])
}

/// What the tp_btf attach program reads of the moved task beyond
/// [`from_btf`]'s (`AttachEvent::valid` `ATTACH_TASK`): its start and its
/// parent's leader's. `start_boottime` came in Linux 5.5; without these the
/// moves' records carry no task and wake the daemon, which reads /proc.
pub fn attach_task(btf: &Btf) -> Result<Vec<Global>, crate::kernel::btf::BtfError> {
    let m = |s: &str, p: &str| btf.member_offset(s, p);
    Ok(vec![
        ("TASK_START_BOOTTIME", m("task_struct", "start_boottime")?),
        ("TASK_GROUP_LEADER", m("task_struct", "group_leader")?),
    ])
}

/// From a limit file (`struct kernfs_open_file`) to its cgroup and memcg,
/// for the limit-write family (`Need::BtfFields(Fields::LimitWrite)`).
/// `kernfs_node.parent` became `__parent` in 6.15.
pub fn limit_write(btf: &Btf) -> Result<Vec<Global>, crate::kernel::btf::BtfError> {
    let m = |s: &str, p: &str| btf.member_offset(s, p);
    let parent = m("kernfs_node", "parent").or_else(|_| m("kernfs_node", "__parent"))?;
    Ok(vec![
        ("OF_KN", m("kernfs_open_file", "kn")?),
        ("KN_PARENT", parent),
        ("KN_PRIV", m("kernfs_node", "priv")?),
        ("CGROUP_SUBSYS", m("cgroup", "subsys")?),
    ])
}

/// Field offsets of one tracepoint family, from tracefs.
pub fn mark_victim(tracefs: &Path) -> Result<Vec<Global>, tracefs::FormatError> {
    mark_victim_fields(&tracefs::read_format(tracefs, "oom", "mark_victim")?)
}

/// `oom:mark_victim`'s offsets. Only the pid is required: before Linux 6.9
/// (unless backported) the record holds nothing else, and the fields it
/// lacks are [`FIELD_ABSENT`], left unread (the kernel's report names the
/// victim's command then).
pub fn mark_victim_fields(f: &tracefs::Format) -> Result<Vec<Global>, tracefs::FormatError> {
    let optional = |name: &str| f.field(name).ok();
    let offset = |name: &str| optional(name).map_or(FIELD_ABSENT, |x| x.offset);
    let comm = optional("comm");
    Ok(vec![
        ("TP_MV_PID", f.field("pid")?.offset),
        ("TP_MV_COMM", comm.map_or(FIELD_ABSENT, |c| c.offset)),
        (
            "TP_MV_COMM_IS_LOC",
            comm.map_or(0, |c| u32::from(c.data_loc)),
        ),
        ("TP_MV_TOTAL_VM", offset("total_vm")),
        ("TP_MV_ANON_RSS", offset("anon_rss")),
        ("TP_MV_FILE_RSS", offset("file_rss")),
        ("TP_MV_SHMEM_RSS", offset("shmem_rss")),
        ("TP_MV_OOM_SCORE_ADJ", offset("oom_score_adj")),
    ])
}

pub fn cgroup(tracefs: &Path) -> Result<Vec<Global>, tracefs::FormatError> {
    // mkdir, rmdir and release share the `cgroup` event class.
    let f = tracefs::read_format(tracefs, "cgroup", "cgroup_mkdir")?;
    let a = tracefs::read_format(tracefs, "cgroup", "cgroup_attach_task")?;
    Ok(vec![
        ("TP_CG_ROOT", f.field("root")?.offset),
        ("TP_CG_ID", f.field("id")?.offset),
        ("TP_CG_LEVEL", f.field("level")?.offset),
        ("TP_CG_PATH", f.field("path")?.offset),
        ("TP_AT_DST_ROOT", a.field("dst_root")?.offset),
        ("TP_AT_DST_ID", a.field("dst_id")?.offset),
        ("TP_AT_DST_LEVEL", a.field("dst_level")?.offset),
        ("TP_AT_PID", a.field("pid")?.offset),
        ("TP_AT_DST_PATH", a.field("dst_path")?.offset),
        ("TP_AT_COMM", a.field("comm")?.offset),
    ])
}

pub fn signal(tracefs: &Path) -> Result<Vec<Global>, tracefs::FormatError> {
    let f = tracefs::read_format(tracefs, "signal", "signal_generate")?;
    Ok(vec![
        ("TP_SG_SIG", f.field("sig")?.offset),
        ("TP_SG_CODE", f.field("code")?.offset),
        ("TP_SG_COMM", f.field("comm")?.offset),
        ("TP_SG_PID", f.field("pid")?.offset),
        ("TP_SG_RESULT", f.field("result")?.offset),
    ])
}

/// `memcg:mod_memcg_lruvec_state` fields and the `node_stat_item` values
/// the charge counter sums (anon, file, shmem pages).
pub fn memcg_charge(tracefs: &Path, btf: Option<&Btf>) -> Result<Vec<Global>, String> {
    let f = tracefs::read_format(tracefs, "memcg", "mod_memcg_lruvec_state")
        .map_err(|e| e.to_string())?;
    let btf = btf.ok_or("no kernel BTF for the node_stat_item values")?;
    let item = |v: &str| {
        btf.enum_value("node_stat_item", v)
            .map(|x| x as u32)
            .map_err(|e| e.to_string())
    };
    let field = |n: &str| f.field(n).map(|x| x.offset).map_err(|e| e.to_string());
    Ok(vec![
        ("TP_MS_ID", field("id")?),
        ("TP_MS_ITEM", field("item")?),
        ("TP_MS_VAL", field("val")?),
        ("ITEM_ANON", item("NR_ANON_MAPPED")?),
        ("ITEM_FILE", item("NR_FILE_PAGES")?),
        ("ITEM_SHMEM", item("NR_SHMEM")?),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian 11's 5.10 (`events/oom/mark_victim/format`): the pid only.
    const MARK_VICTIM_5_10: &str = "name: mark_victim
ID: 492
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;

print fmt: \"pid=%d\", REC->pid
";

    /// 6.9 and later (6.18's, as the tracefs parser's tests hold it):
    /// comm and the memory too.
    use crate::kernel::tracefs::tests::MARK_VICTIM as MARK_VICTIM_6_18;

    fn globals(text: &str) -> Vec<Global> {
        let f = tracefs::parse_format(text).expect("a format file");
        mark_victim_fields(&f).expect("mark_victim's offsets")
    }

    #[test]
    fn a_pid_only_mark_victim_leaves_the_rest_absent() {
        assert_eq!(
            globals(MARK_VICTIM_5_10),
            [
                ("TP_MV_PID", 8),
                ("TP_MV_COMM", FIELD_ABSENT),
                ("TP_MV_COMM_IS_LOC", 0),
                ("TP_MV_TOTAL_VM", FIELD_ABSENT),
                ("TP_MV_ANON_RSS", FIELD_ABSENT),
                ("TP_MV_FILE_RSS", FIELD_ABSENT),
                ("TP_MV_SHMEM_RSS", FIELD_ABSENT),
                ("TP_MV_OOM_SCORE_ADJ", FIELD_ABSENT),
            ]
        );
    }

    #[test]
    fn a_full_mark_victim_has_every_offset() {
        assert_eq!(
            globals(MARK_VICTIM_6_18),
            [
                ("TP_MV_PID", 8),
                ("TP_MV_COMM", 12),
                ("TP_MV_COMM_IS_LOC", 1),
                ("TP_MV_TOTAL_VM", 16),
                ("TP_MV_ANON_RSS", 24),
                ("TP_MV_FILE_RSS", 32),
                ("TP_MV_SHMEM_RSS", 40),
                ("TP_MV_OOM_SCORE_ADJ", 64),
            ]
        );
    }

    /// Without the pid there is no victim to name: the row is skipped.
    #[test]
    fn mark_victim_without_a_pid_is_an_error() {
        let text = MARK_VICTIM_5_10.replace("field:int pid;", "field:int tgid;");
        let f = tracefs::parse_format(&text).expect("a format file");
        assert!(matches!(
            mark_victim_fields(&f),
            Err(tracefs::FormatError::NoSuchField { .. })
        ));
    }
}
