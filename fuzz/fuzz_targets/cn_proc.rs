//! The Linux process-events connector: a received datagram is split into
//! netlink messages and each is decoded. Any bytes give events or errors,
//! never a panic, and the split never loops or reads outside the buffer.
//! The `/proc` text parsers the live source calls per event ride along.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsmwatch::live::proc_connector::cn_proc::{netlink_messages, parse_proc_event};
use wsmwatch::live::proc_connector::procfs;

fuzz_target!(|data: &[u8]| {
    let mut covered = 0usize;
    for msg in netlink_messages(data) {
        match msg {
            Ok(m) => {
                covered += m.len();
                assert!(covered <= data.len(), "messages overlap or overrun");
                if let Err(e) = parse_proc_event(m) {
                    let _ = e.to_string();
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    // One datagram as one message, as the connector usually sends them.
    let _ = parse_proc_event(data);

    // /proc/<pid>/stat and cmdline are written by whoever names the process.
    let text = String::from_utf8_lossy(data);
    let _ = procfs::parse_stat(&text);
    let _ = procfs::parse_btime(&text);
    let _ = procfs::has_effective_cap(&text, 21);
    let _ = procfs::parse_passwd(&text);
    if let Some(line) = procfs::join_cmdline(data) {
        // Trailing NULs end the list; a lone argument is a process title,
        // kept verbatim; several (valid UTF-8) split back unchanged.
        let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let raw = &data[..end];
        if !raw.contains(&0) {
            assert_eq!(line, String::from_utf8_lossy(raw), "title changed");
        } else if let Ok(text) = std::str::from_utf8(raw) {
            let args: Vec<&str> = text.split('\0').collect();
            assert_eq!(procfs::split_command_line(&line), args, "cmdline {line:?}");
        }
    }
});
