//! A session host's logon: its token's `AuthenticationId` and what LSA
//! knows of that logon session. The conversions and the event order are
//! pure ([`crate::live::etw::logon`]); only the calls are here.

use std::mem::{offset_of, size_of};

use windows::Win32::Foundation::{FILETIME, HANDLE, LUID};
use windows::Win32::Security::Authentication::Identity::{
    LsaFreeReturnBuffer, LsaGetLogonSessionData, LSA_UNICODE_STRING, SECURITY_LOGON_SESSION_DATA,
};
use windows::Win32::Security::{
    GetTokenInformation, TokenStatistics, TOKEN_QUERY, TOKEN_STATISTICS,
};
use windows::Win32::System::Threading::{
    GetProcessTimes, OpenProcess, OpenProcessToken, PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::snapshot::{filetime, Handle};
use crate::activity::Logon;
use crate::event::Timestamp;
use crate::live::etw::logon::{logon_id, lsa_text, unicode_units, LogonRead, TokenError};

/// The Win32 code inside a `windows` error (its HRESULT is 0x8007xxxx).
fn win32(step: &'static str) -> impl Fn(windows::core::Error) -> TokenError {
    move |e| {
        let h = e.code().0 as u32;
        let code = if h & 0xFFFF_0000 == 0x8007_0000 {
            h & 0xFFFF
        } else {
            h
        };
        TokenError::Win32 { step, code }
    }
}

/// The logon of process `pid`, if it is still the incarnation created at
/// `create_time`: the token's `AuthenticationId`, then
/// `LsaGetLogonSessionData` for user, domain, type and package. When LSA
/// fails the logon id alone is returned with the failure.
pub(super) fn read_logon(pid: u32, create_time: Option<Timestamp>) -> LogonRead {
    let (luid, id) = match token_luid(pid, create_time)
        .and_then(|l| logon_id(l.LowPart, l.HighPart).map(|id| (l, id)))
    {
        Ok(v) => v,
        Err(e) => {
            return LogonRead {
                logon: None,
                failure: Some(e),
            }
        }
    };
    match session_data(&luid) {
        Ok(l) => LogonRead {
            logon: Some(Logon { logon_id: id, ..l }),
            failure: None,
        },
        Err(e) => LogonRead {
            logon: Some(Logon {
                logon_id: id,
                ..Logon::default()
            }),
            failure: Some(e),
        },
    }
}

fn token_luid(pid: u32, create_time: Option<Timestamp>) -> Result<LUID, TokenError> {
    // SAFETY: no pointers are passed; failure is reported as Err.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, false, pid) }
        .map(Handle)
        .map_err(win32("OpenProcess"))?;
    if let Some(want) = create_time {
        let mut t = [FILETIME::default(); 4];
        let [c, e, k, u] = &mut t;
        // SAFETY: the handle is open; the four out pointers are valid locals.
        unsafe { GetProcessTimes(process.0, c, e, k, u) }.map_err(win32("GetProcessTimes"))?;
        if filetime(t[0]) != want.0 {
            return Err(TokenError::Reused);
        }
    }
    let mut token = HANDLE::default();
    // SAFETY: the process handle is open; `token` is a valid out pointer.
    unsafe { OpenProcessToken(process.0, TOKEN_QUERY, &mut token) }
        .map_err(win32("OpenProcessToken"))?;
    let token = Handle(token);
    let mut stats = TOKEN_STATISTICS::default();
    let mut len = 0u32;
    // SAFETY: the token is open with TOKEN_QUERY; `stats` is writable for
    // the size passed; `len` is a valid out pointer.
    unsafe {
        GetTokenInformation(
            token.0,
            TokenStatistics,
            Some(std::ptr::from_mut(&mut stats).cast()),
            size_of::<TOKEN_STATISTICS>() as u32,
            &mut len,
        )
    }
    .map_err(win32("GetTokenInformation(TokenStatistics)"))?;
    Ok(stats.AuthenticationId)
}

/// Frees what `LsaGetLogonSessionData` returned.
struct LsaBuffer(*mut SECURITY_LOGON_SESSION_DATA);

impl Drop for LsaBuffer {
    fn drop(&mut self) {
        // SAFETY: the pointer came from LsaGetLogonSessionData and is freed
        // once, here.
        let _ = unsafe { LsaFreeReturnBuffer(self.0.cast_const().cast()) };
    }
}

/// What LSA knows of logon session `luid` (user, domain, type, package).
pub(super) fn session_data(luid: &LUID) -> Result<Logon, TokenError> {
    let mut data: *mut SECURITY_LOGON_SESSION_DATA = std::ptr::null_mut();
    // SAFETY: `luid` is a valid LUID; `data` is a valid out pointer.
    let status = unsafe { LsaGetLogonSessionData(luid, &mut data) };
    if status.is_err() {
        return Err(TokenError::Lsa(status.0 as u32));
    }
    if data.is_null() {
        return Err(TokenError::Lsa(0));
    }
    let buf = LsaBuffer(data);
    // SAFETY: LSA returned a non-null, initialised structure that stays
    // valid until `buf` frees it at the end of this function.
    let d = unsafe { &*buf.0 };
    // Fields up to LogonType exist in every version; trust no more than
    // the structure says it holds.
    if (d.Size as usize) < offset_of!(SECURITY_LOGON_SESSION_DATA, Session) {
        return Err(TokenError::Lsa(0));
    }
    Ok(Logon {
        user: lsa_string(&d.UserName),
        domain: lsa_string(&d.LogonDomain),
        logon_type: Some(d.LogonType),
        auth_package: lsa_string(&d.AuthenticationPackage),
        ..Logon::default()
    })
}

fn lsa_string(s: &LSA_UNICODE_STRING) -> Option<String> {
    if s.Buffer.is_null() {
        return None;
    }
    let n = unicode_units(s.Length, s.MaximumLength);
    // SAFETY: `Buffer` points to `MaximumLength` bytes inside LSA's
    // allocation, alive while the caller holds it; `n` UTF-16 units are at
    // most min(Length, MaximumLength) bytes.
    let units = unsafe { std::slice::from_raw_parts(s.Buffer.0, n) };
    lsa_text(units)
}
