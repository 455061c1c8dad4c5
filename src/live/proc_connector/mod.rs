//! The pure half of the Linux live source: the kernel's process-events
//! connector messages (`cn_proc`), the `/proc` parsers (`procfs`, and
//! `sockets` for a process's TCP connections), the event logic (`tracker`)
//! and what it adds for session attribution (`attribution`: logons and an
//! sshd's client connection), compiled and tested on every platform. The
//! socket and loop are in `live/linux.rs`.

pub mod attribution;
pub mod canary;
decoder_mod!(cn_proc);
pub mod procfs;
pub mod sockets;
pub mod tracker;
