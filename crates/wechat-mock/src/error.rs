//! Errors of the in-process API (the control API turns them into 4xx answers).

/// Why a [`crate::Mock`] call was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MockError {
    #[error("unknown app {0}")]
    UnknownApp(String),
    #[error("invalid app: {0}")]
    InvalidApp(String),
    #[error("user must not be empty")]
    EmptyUser,
    #[error("data must be a JSON object")]
    NotAnObject,
    #[error("phone must be 5 to 20 digits")]
    InvalidPhone,
    #[error("country_code must be 1 to 4 digits")]
    InvalidCountryCode,
    #[error("the user's session_key cannot encrypt")]
    BadSessionKey,
}

impl MockError {
    /// Whether the error names something that does not exist (404) rather than bad input (400).
    pub fn is_not_found(&self) -> bool {
        matches!(self, MockError::UnknownApp(_))
    }
}
