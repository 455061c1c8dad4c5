//! The providers the live session enables, and which decoder a record goes
//! to. Pure, so the plan and the routing are tested on every platform.
//!
//! Kernel-Process is the source itself and required. Kernel-Network (TCP
//! connect/accept: the client's address) and PowerShell (4103/4104: what
//! ran in a session) only attribute sessions, so each can be turned off
//! (`LiveConfig::network`, `LiveConfig::powershell`) and a failure to
//! enable them falls back to Kernel-Process alone.

use super::{guid_from_u128, KERNEL_PROCESS_GUID, KEYWORD_PROCESS, PROCESS_EVENT_IDS};
use crate::event::Guid;
use crate::live::LiveConfig;

/// Microsoft-Windows-Kernel-Network, `{7DD42A49-5329-4832-8DFD-43D979153A88}`.
pub const KERNEL_NETWORK_GUID: u128 = 0x7DD42A49_5329_4832_8DFD_43D979153A88;
/// Microsoft-Windows-PowerShell, `{A0C1853B-5C40-4B15-8766-3CF1C58F985A}`
/// (Windows PowerShell 5.1; PowerShell 7 logs to PowerShellCore).
pub const POWERSHELL_GUID: u128 = 0xA0C1853B_5C40_4B15_8766_3CF1C58F985A;

/// Kernel-Network as a [`Guid`].
pub const KERNEL_NETWORK_PROVIDER: Guid = guid_from_u128(KERNEL_NETWORK_GUID);
/// PowerShell as a [`Guid`].
pub const POWERSHELL_PROVIDER: Guid = guid_from_u128(POWERSHELL_GUID);

/// Short names, used in decode errors (event ids overlap across providers).
pub const KERNEL_PROCESS_NAME: &str = "Kernel-Process";
/// See [`KERNEL_PROCESS_NAME`].
pub const KERNEL_NETWORK_NAME: &str = "Kernel-Network";
/// See [`KERNEL_PROCESS_NAME`].
pub const POWERSHELL_NAME: &str = "PowerShell";

/// `KERNEL_NETWORK_KEYWORD_IPV4`.
pub const KEYWORD_IPV4: u64 = 0x10;
/// `KERNEL_NETWORK_KEYWORD_IPV6`.
pub const KEYWORD_IPV6: u64 = 0x20;

/// TcpIp/Connect, IPv4: "Connection attempted".
pub const TCP_CONNECT_V4: u16 = 12;
/// TcpIp/Accept, IPv4: "Connection accepted".
pub const TCP_ACCEPT_V4: u16 = 15;
/// TcpIp/Connect, IPv6.
pub const TCP_CONNECT_V6: u16 = 28;
/// TcpIp/Accept, IPv6.
pub const TCP_ACCEPT_V6: u16 = 31;
/// The Kernel-Network events the session asks for; send/receive are far
/// too many and say nothing the join needs.
pub const NETWORK_EVENT_IDS: [u16; 4] =
    [TCP_CONNECT_V4, TCP_ACCEPT_V4, TCP_CONNECT_V6, TCP_ACCEPT_V6];

/// PowerShell 4103: pipeline execution details (module logging).
pub const PS_PIPELINE: u16 = 4103;
/// PowerShell 4104: script block text (script block logging).
pub const PS_SCRIPT_BLOCK: u16 = 4104;
/// The PowerShell events the session asks for.
pub const POWERSHELL_EVENT_IDS: [u16; 2] = [PS_PIPELINE, PS_SCRIPT_BLOCK];

/// `TRACE_LEVEL_INFORMATION`.
pub const LEVEL_INFORMATION: u8 = 4;
/// `TRACE_LEVEL_VERBOSE`: 4104 is written at Verbose (Warning when the
/// block looks suspicious).
pub const LEVEL_VERBOSE: u8 = 5;

/// Which decoder a provider's records go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// Process start, stop, rundown.
    KernelProcess,
    /// TCP connect and accept.
    KernelNetwork,
    /// PowerShell 4103/4104.
    PowerShell,
}

/// One provider to enable, as `EnableTraceEx2` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderPlan {
    /// Which one.
    pub kind: ProviderKind,
    /// Its GUID (`u128`, Data1 in the top bits).
    pub guid: u128,
    /// `MatchAnyKeyword`.
    pub any_keyword: u64,
    /// `Level`.
    pub level: u8,
    /// The event-id filter.
    pub event_ids: &'static [u16],
    /// False: a failure to enable it is a warning, not the end of `live`.
    pub required: bool,
}

impl ProviderKind {
    /// The provider for a record's `ProviderId`, if the source decodes it.
    pub fn route(provider: Guid) -> Option<ProviderKind> {
        [
            ProviderKind::KernelProcess,
            ProviderKind::KernelNetwork,
            ProviderKind::PowerShell,
        ]
        .into_iter()
        .find(|k| k.guid() == provider)
    }

    /// The provider's GUID.
    pub fn guid(self) -> Guid {
        guid_from_u128(self.guid_u128())
    }

    /// The provider's GUID as a `u128`.
    pub fn guid_u128(self) -> u128 {
        match self {
            ProviderKind::KernelProcess => KERNEL_PROCESS_GUID,
            ProviderKind::KernelNetwork => KERNEL_NETWORK_GUID,
            ProviderKind::PowerShell => POWERSHELL_GUID,
        }
    }

    /// The short name.
    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::KernelProcess => KERNEL_PROCESS_NAME,
            ProviderKind::KernelNetwork => KERNEL_NETWORK_NAME,
            ProviderKind::PowerShell => POWERSHELL_NAME,
        }
    }

    /// How the session enables it.
    pub fn plan(self) -> ProviderPlan {
        let (any_keyword, level, event_ids): (u64, u8, &'static [u16]) = match self {
            ProviderKind::KernelProcess => (KEYWORD_PROCESS, LEVEL_INFORMATION, &PROCESS_EVENT_IDS),
            ProviderKind::KernelNetwork => {
                (KEYWORD_IPV4 | KEYWORD_IPV6, LEVEL_VERBOSE, &NETWORK_EVENT_IDS)
            }
            // Every keyword: 4103/4104 carry only channel bits in some
            // builds, and the event-id filter keeps the volume down.
            ProviderKind::PowerShell => (u64::MAX, LEVEL_VERBOSE, &POWERSHELL_EVENT_IDS),
        };
        ProviderPlan {
            kind: self,
            guid: self.guid_u128(),
            any_keyword,
            level,
            event_ids,
            required: self == ProviderKind::KernelProcess,
        }
    }
}

/// The providers a session with `config` enables, Kernel-Process first.
pub fn session_providers(config: &LiveConfig) -> Vec<ProviderPlan> {
    let mut v = vec![ProviderKind::KernelProcess.plan()];
    if config.network {
        v.push(ProviderKind::KernelNetwork.plan());
    }
    if config.powershell {
        v.push(ProviderKind::PowerShell.plan());
    }
    v
}

/// The fallback when enabling the whole plan failed: the required
/// providers alone, or `None` when there is nothing to drop.
pub fn required_only(plan: &[ProviderPlan]) -> Option<Vec<ProviderPlan>> {
    let req: Vec<ProviderPlan> = plan.iter().copied().filter(|p| p.required).collect();
    (req.len() < plan.len()).then_some(req)
}

/// True when a failed start is worth retrying with the required providers
/// only: ferrisetw reports StartTraceW and EnableTraceEx2 failures as one
/// step, and an optional provider may be what failed (8 sessions already
/// enable it). Access denied is the caller's rights, not a provider.
pub fn retry_required_only(step: &str, win32: Option<u32>) -> bool {
    step == "StartTraceW/EnableTraceEx2" && win32 != Some(super::session::ERROR_ACCESS_DENIED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_match_their_text_form() {
        assert_eq!(
            Guid::parse("{7DD42A49-5329-4832-8DFD-43D979153A88}"),
            Some(KERNEL_NETWORK_PROVIDER)
        );
        assert_eq!(
            Guid::parse("{A0C1853B-5C40-4B15-8766-3CF1C58F985A}"),
            Some(POWERSHELL_PROVIDER)
        );
    }

    #[test]
    fn records_route_by_provider_guid() {
        use super::super::KERNEL_PROCESS_PROVIDER;
        assert_eq!(
            ProviderKind::route(KERNEL_PROCESS_PROVIDER),
            Some(ProviderKind::KernelProcess)
        );
        assert_eq!(
            ProviderKind::route(KERNEL_NETWORK_PROVIDER),
            Some(ProviderKind::KernelNetwork)
        );
        assert_eq!(
            ProviderKind::route(POWERSHELL_PROVIDER),
            Some(ProviderKind::PowerShell)
        );
        // PowerShellCore (pwsh 7) is another provider: not ours.
        let core = Guid::parse("{f90714a8-5509-434a-bf6d-b1624c8a19a2}").unwrap();
        assert_eq!(ProviderKind::route(core), None);
    }

    #[test]
    fn the_plan_follows_the_config_and_keeps_kernel_process_first() {
        let all = session_providers(&LiveConfig::default());
        let kinds: Vec<_> = all.iter().map(|p| p.kind).collect();
        assert_eq!(
            kinds,
            [
                ProviderKind::KernelProcess,
                ProviderKind::KernelNetwork,
                ProviderKind::PowerShell
            ]
        );
        let net = all[1];
        assert_eq!(net.any_keyword, 0x30);
        assert_eq!(net.event_ids, [12, 15, 28, 31]);
        assert!(!net.required);
        let ps = all[2];
        assert_eq!(ps.event_ids, [4103, 4104]);
        assert_eq!(ps.level, 5);
        assert_eq!(all[0].any_keyword, 0x10);
        assert!(all[0].required);

        let only = session_providers(&LiveConfig {
            network: false,
            powershell: false,
            ..LiveConfig::default()
        });
        assert_eq!(only.len(), 1);
        assert_eq!(required_only(&only), None);
        assert_eq!(required_only(&all), Some(only));
        let no_ps = session_providers(&LiveConfig {
            powershell: false,
            ..LiveConfig::default()
        });
        assert_eq!(no_ps.last().map(|p| p.kind), Some(ProviderKind::KernelNetwork));
    }

    #[test]
    fn only_an_enable_failure_falls_back_to_kernel_process() {
        assert!(retry_required_only("StartTraceW/EnableTraceEx2", Some(1450)));
        assert!(retry_required_only("StartTraceW/EnableTraceEx2", None));
        assert!(!retry_required_only("StartTraceW/EnableTraceEx2", Some(5)));
        assert!(!retry_required_only("OpenTraceW", Some(5)));
    }
}
