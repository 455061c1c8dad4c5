//! Built-in event streams: the demo scenario and a synthetic busy host for
//! benches and soak tests. Not evidence readers and not live sources.

pub mod demo;
pub mod synthetic;
