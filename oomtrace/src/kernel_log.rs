//! Reads /dev/kmsg on a thread of its own (its reads block) from the end
//! of the log, and hands the kernel's `oom-kill:` summary lines to the
//! pipeline. The kernel rate-limits those lines, so they only fill gaps.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
};

use tokio::sync::mpsc::Sender;

use crate::kmsg::{self, OomLine, OomSummary};

pub fn spawn_reader(tx: Sender<OomSummary>) -> std::io::Result<()> {
    let mut file = File::open("/dev/kmsg")?;
    // /dev/kmsg seeks to the end of the ring: only what happens from now on.
    file.seek(SeekFrom::End(0))?;
    std::thread::Builder::new()
        .name("kmsg".into())
        .spawn(move || {
            // One read returns exactly one record; 8 KiB is the kernel's maximum.
            let mut buf = vec![0u8; 8192];
            loop {
                match file.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        let text = String::from_utf8_lossy(&buf[..n]);
                        let Ok(record) = kmsg::parse_record(&text) else {
                            continue;
                        };
                        if let Some(OomLine::Summary(s)) = kmsg::parse_oom_line(&record.text) {
                            if tx.blocking_send(s).is_err() {
                                return;
                            }
                        }
                    }
                    // EPIPE: records were overwritten before we read them; go on.
                    Err(e) if e.raw_os_error() == Some(32) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::warn!("reading /dev/kmsg stopped: {e}");
                        return;
                    }
                }
            }
        })?;
    Ok(())
}
