//! Proof that the connector still delivers when the host is quiet.
//!
//! The kernel sends process events only while its global listener count is
//! above zero, and any privileged process can lower it with
//! `PROC_CN_MCAST_IGNORE` — a silent stop of every listener (ATT&CK
//! T1562.006). Silence on a quiet host looks the same, so after
//! [`Canary::idle`] without a message the source starts a thread of its own:
//! that is a fork event (and an exit) every listener must receive. If not
//! even that arrives within [`Canary::timeout`], the subscription is gone.
//! Pure logic on injected instants, tested without a socket.

use std::time::{Duration, Instant};

/// What the loop should do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CanaryAction {
    /// Nothing.
    Wait,
    /// Start the canary thread now.
    Send,
    /// The canary went unseen: no message for this long.
    Silent(Duration),
}

/// The canary's state.
#[derive(Clone, Copy, Debug)]
pub struct Canary {
    /// Quiet time before a canary is sent.
    pub idle: Duration,
    /// How long a sent canary may take to show.
    pub timeout: Duration,
    last_message: Instant,
    sent: Option<Instant>,
}

impl Canary {
    /// Default quiet time before a canary: cheap (one thread every few
    /// seconds on an idle host), and a tamper is noticed within
    /// `idle + timeout`.
    pub const IDLE: Duration = Duration::from_secs(5);
    /// Default time a canary may take (a loaded box delays delivery).
    pub const TIMEOUT: Duration = Duration::from_secs(3);

    /// A canary that counts `now` as the last message.
    pub fn new(now: Instant, idle: Duration, timeout: Duration) -> Self {
        Canary {
            idle,
            timeout,
            last_message: now,
            sent: None,
        }
    }

    /// A message (any process event) arrived.
    pub fn on_message(&mut self, now: Instant) {
        self.last_message = now;
        self.sent = None;
    }

    /// What to do at `now`.
    pub fn tick(&mut self, now: Instant) -> CanaryAction {
        match self.sent {
            Some(at) if now.saturating_duration_since(at) >= self.timeout => {
                CanaryAction::Silent(now.saturating_duration_since(self.last_message))
            }
            Some(_) => CanaryAction::Wait,
            None if now.saturating_duration_since(self.last_message) >= self.idle => {
                self.sent = Some(now);
                CanaryAction::Send
            }
            None => CanaryAction::Wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Defect 1 on Linux: an unsubscribed connector was indistinguishable
    /// from a quiet host, so monitoring could be switched off silently.
    #[test]
    fn an_unseen_canary_means_the_connector_went_silent() {
        let t0 = Instant::now();
        let mut c = Canary::new(t0, ms(5000), ms(3000));
        assert_eq!(c.tick(t0 + ms(4999)), CanaryAction::Wait);
        assert_eq!(c.tick(t0 + ms(5000)), CanaryAction::Send);
        assert_eq!(c.tick(t0 + ms(6000)), CanaryAction::Wait, "sent once");
        assert_eq!(c.tick(t0 + ms(8000)), CanaryAction::Silent(ms(8000)));
    }

    #[test]
    fn any_message_answers_the_canary_and_restarts_the_quiet_time() {
        let t0 = Instant::now();
        let mut c = Canary::new(t0, ms(5000), ms(3000));
        assert_eq!(c.tick(t0 + ms(5000)), CanaryAction::Send);
        c.on_message(t0 + ms(5001));
        assert_eq!(c.tick(t0 + ms(9000)), CanaryAction::Wait);
        assert_eq!(c.tick(t0 + ms(10_001)), CanaryAction::Send);
        // A busy host never sends one.
        let mut c = Canary::new(t0, ms(5000), ms(3000));
        for i in 1..100 {
            c.on_message(t0 + ms(i * 100));
            assert_eq!(c.tick(t0 + ms(i * 100 + 50)), CanaryAction::Wait);
        }
    }
}
