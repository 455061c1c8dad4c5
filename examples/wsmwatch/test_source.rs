//! Debug builds only (`live --test-demo-source`): the demo's events as a
//! live source that then runs until stopped, so the service tests can drive
//! the whole `live` path (SCM start, alerts written, stop control, drain,
//! flush, final counters) under Wine, where ETW delivers nothing.

use std::time::Duration;

use wsmwatch::source::{Emitter, Source, SourceError, StopToken};
use wsmwatch::testing::demo;

#[derive(Debug, Default)]
pub(crate) struct DemoThenWait;

impl Source for DemoThenWait {
    fn name(&self) -> String {
        "test:demo-then-wait".into()
    }

    fn run(&mut self, out: &mut Emitter, stop: &StopToken) -> Result<(), SourceError> {
        for ev in demo::scenario() {
            out.emit(ev)?;
        }
        while !stop.is_stopped() {
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}
