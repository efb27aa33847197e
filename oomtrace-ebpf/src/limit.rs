//! Writes of a memory cgroup's limit: fentry, else kprobe, on cgroup v2's
//! `memory_max_write(struct kernfs_open_file *of, char *buf, size_t nbytes,
//! loff_t off)`. At its start the limit is still the old one and `buf` holds
//! the new one as text: one record gives the moment and both values. Rare
//! (the kubelet, a VPA or a resize writes limits), so no rate limit.

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
    EbpfContext,
};
use aya_log_ebpf::debug;
use oomtrace_common::{valid, Hook, Kind, LimitWriteEvent, LIMIT_TEXT_LEN};

use crate::{
    globals::{self as g, get},
    kernel::{count_drop, flag, header, read, try_read_str, WAKE},
    EVENTS,
};

#[fentry(function = "memory_max_write")]
pub fn limit_fentry(ctx: FEntryContext) -> i32 {
    let of: *const u8 = ctx.arg(0);
    let buf: *const u8 = ctx.arg(1);
    emit(&ctx, of, buf);
    0
}

#[kprobe]
pub fn limit_kprobe(ctx: ProbeContext) -> u32 {
    if let (Some(of), Some(buf)) = (ctx.arg::<*const u8>(0), ctx.arg::<*const u8>(1)) {
        emit(&ctx, of, buf);
    }
    0
}

/// The cgroup is `of->kn->parent` (its directory; `priv` is its `struct
/// cgroup`), the memcg its memory css, as `mem_cgroup_from_css(of_css(of))`.
#[inline(always)]
fn emit<C: EbpfContext>(ctx: &C, of: *const u8, buf: *const u8) {
    let Some(mut entry) = EVENTS.reserve::<LimitWriteEvent>(0) else {
        count_drop(Hook::Limit);
        return;
    };
    let ev = entry.as_mut_ptr();
    let missing = unsafe {
        (*ev).header = header(Kind::LimitWrite);
        (*ev).memcg_id = 0;
        (*ev).old_max_pages = 0;
        (*ev).text_len = 0;
        (*ev).text = [0; LIMIT_TEXT_LEN];
        let mut ok = 0;
        let dir = read::<*const u8>(of, get(&g::OF_KN))
            .and_then(|kn| read::<*const u8>(kn, get(&g::KN_PARENT)));
        if let Ok(id) = dir.and_then(|d| read::<u64>(d, get(&g::KN_ID))) {
            (*ev).memcg_id = id;
            ok |= valid::LIMIT_MEMCG_ID;
        }
        if let Ok(max) = dir
            .and_then(|d| read::<*const u8>(d, get(&g::KN_PRIV)))
            .and_then(|cgrp| {
                read::<*const u8>(cgrp, get(&g::CGROUP_SUBSYS) + 8 * get(&g::MEMORY_CGRP_ID))
            })
            .and_then(|css| {
                let memcg = css.wrapping_sub(get(&g::MEMCG_CSS));
                read::<u64>(memcg, get(&g::MEMCG_MEMORY) + get(&g::PC_MAX))
            })
        {
            (*ev).old_max_pages = max;
            ok |= valid::LIMIT_OLD_MAX;
        }
        if let Ok(n) = try_read_str(buf, (*ev).text.as_mut_ptr(), LIMIT_TEXT_LEN) {
            (*ev).text_len = n;
            ok |= valid::LIMIT_TEXT;
        }
        (*ev).valid = ok;
        valid::LIMIT_ALL & !ok
    };
    entry.submit(WAKE);
    if missing != 0 {
        debug!(
            ctx,
            "limit write: kernel reads failed (1): cgroup id {} old limit {} text {}",
            flag(missing, valid::LIMIT_MEMCG_ID),
            flag(missing, valid::LIMIT_OLD_MAX),
            flag(missing, valid::LIMIT_TEXT)
        );
    }
}
