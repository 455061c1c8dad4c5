//! The pure half of the Linux live source: the kernel's process-events
//! connector messages (`cn_proc`) and the `/proc` parsers, compiled and
//! tested on every platform. The socket and loop are in `live/linux.rs`.

decoder_mod!(cn_proc);
pub mod procfs;
