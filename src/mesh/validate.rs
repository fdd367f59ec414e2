//! Argument checks shared by the engine's operations.

use crate::config;
use crate::error::{MeshError, Result};

/// An identifier or name: 1 to 64 bytes of letters, digits, `-`, `_`, `.` and `:`.
pub fn name(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(MeshError::invalid(field, "must not be empty"));
    }
    if value.len() > config::MAX_NAME_BYTES {
        return Err(MeshError::invalid(field, format!("longer than {} bytes", config::MAX_NAME_BYTES)));
    }
    if let Some(c) = value.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c))) {
        return Err(MeshError::invalid(
            field,
            format!("character {c:?} is not allowed (use letters, digits, - _ . :)"),
        ));
    }
    Ok(())
}

/// A memory key: 1 to 512 bytes, no control characters.
pub fn key(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(MeshError::invalid(field, "must not be empty"));
    }
    if value.len() > config::MAX_KEY_BYTES {
        return Err(MeshError::invalid(field, format!("longer than {} bytes", config::MAX_KEY_BYTES)));
    }
    if value.chars().any(char::is_control) {
        return Err(MeshError::invalid(field, "control characters are not allowed"));
    }
    Ok(())
}

/// A fraction in (0, 1].
pub fn fraction(field: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 && value <= 1.0 {
        Ok(())
    } else {
        Err(MeshError::invalid(field, format!("must be in (0, 1], got {value}")))
    }
}

/// A positive, finite number of seconds.
/// Leases and timeouts are kept in milliseconds, so anything under 10 ms would round to nothing
/// (or to a lease that lapses before its own write commits).
pub fn seconds(field: &'static str, value: f64) -> Result<()> {
    if value.is_finite() && (0.01..=86_400.0).contains(&value) {
        Ok(())
    } else {
        Err(MeshError::invalid(field, format!("must be between 0.01 and 86400 seconds, got {value}")))
    }
}

pub fn limit(field: &'static str, value: Option<usize>, default: usize) -> Result<usize> {
    match value {
        None => Ok(default),
        Some(0) => Err(MeshError::invalid(field, "must be at least 1")),
        Some(n) if n > config::MAX_LIST_LIMIT => {
            Err(MeshError::invalid(field, format!("must be at most {}", config::MAX_LIST_LIMIT)))
        }
        Some(n) => Ok(n),
    }
}
