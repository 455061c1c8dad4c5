//! No Service Control Manager off Windows: every call is
//! [`ServiceError::Unsupported`].

use super::{Control, InstallSpec, Job, ServiceError, Status};

/// Fails: not Windows.
pub fn install(_: &InstallSpec) -> Result<(), ServiceError> {
    Err(ServiceError::Unsupported)
}

/// Fails: not Windows.
pub fn uninstall(_: &str) -> Result<(), ServiceError> {
    Err(ServiceError::Unsupported)
}

/// Fails: not Windows.
pub fn control(_: &str, _: Control) -> Result<Status, ServiceError> {
    Err(ServiceError::Unsupported)
}

/// Fails: not Windows.
pub fn status(_: &str) -> Result<Status, ServiceError> {
    Err(ServiceError::Unsupported)
}

/// Fails: not Windows.
pub fn run(_: &str, _: Job) -> Result<(), ServiceError> {
    Err(ServiceError::Unsupported)
}
