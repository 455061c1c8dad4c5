//! Built-in event streams: the demo scenario and a synthetic busy host for
//! benches and soak tests, and a scripted live session for the tamper path.
//! Not evidence readers and not live sources.

pub mod demo;
pub mod fake_session;
pub mod synthetic;
