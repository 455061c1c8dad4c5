//! The pure half of the Linux live source: the kernel's process-events
//! connector messages (`cn_proc`), the `/proc` parsers (`procfs`) and the
//! event logic (`tracker`), compiled and tested on every platform. The
//! socket and loop are in `live/linux.rs`.

pub mod canary;
decoder_mod!(cn_proc);
pub mod procfs;
pub mod tracker;
