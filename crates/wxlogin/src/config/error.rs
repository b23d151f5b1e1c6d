//! Configuration errors. Each names the key (or file) at fault and never carries a value that was
//! read: a misplaced secret must not end up in a log line through an error message.

use std::path::PathBuf;

use figment::error::{Actual, Kind};
use figment::{Metadata, Source};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {}: {reason}", path.display())]
    ReadFile { path: PathBuf, reason: String },

    /// The position only: the TOML parser's own message quotes the offending line.
    #[error("{origin} is not valid TOML (line {line}, column {column}): {reason}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        reason: String,
    },

    #[error("{key}: {reason} (in {origin})")]
    Field {
        key: String,
        origin: String,
        reason: String,
    },

    #[error("{key} and {key}_file are both set: keep one of them")]
    SecretTwice { key: String },

    #[error("{key}_file: cannot read {}: {reason}", path.display())]
    SecretFile {
        key: String,
        path: PathBuf,
        reason: String,
    },

    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },

    #[error("{key}: {value} appears more than once; each must be unique")]
    Duplicate { key: &'static str, value: String },

    /// The configuration is valid but not for `wxlogin serve`.
    #[error("{key}: {reason}")]
    NotForProduction { key: &'static str, reason: String },
}

impl ConfigError {
    pub(super) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// Rewrites figment's error: its own text quotes values it could not use (`found string "..."`).
    /// `figment` is asked where the key came from: the error's own metadata is the enclosing
    /// table's, which names the file even for a key that came from the environment.
    pub(super) fn from_figment(error: figment::Error, figment: &figment::Figment) -> Self {
        let mut path = error.path.clone();
        let reason = match &error.kind {
            Kind::Message(message) => message.clone(),
            Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
                format!("expected {expected}, found {}", kind_of(actual))
            }
            Kind::UnknownVariant(found, expected) => {
                format!("unknown value `{found}`, expected {}", one_of(expected))
            }
            Kind::UnknownField(field, expected) => {
                push_once(&mut path, field);
                format!("unknown key, expected {}", one_of(expected))
            }
            Kind::MissingField(field) => {
                push_once(&mut path, field);
                "is required".to_owned()
            }
            other => other.to_string(),
        };
        let origin = figment
            .find_metadata(&path.join("."))
            .or(error.metadata.as_ref())
            .map_or_else(|| "the configuration".to_owned(), |md| origin(md, &path));
        Self::Field {
            key: dotted(&path),
            origin,
            reason,
        }
    }
}

/// figment puts an unknown field in the path itself, serde's own errors do not.
fn push_once(path: &mut Vec<String>, field: &str) {
    if path.last().map(String::as_str) != Some(field) {
        path.push(field.to_owned());
    }
}

/// `apps[0].secret`: numeric segments are sequence indexes.
fn dotted(path: &[String]) -> String {
    let mut key = String::new();
    for segment in path {
        if segment.bytes().all(|b| b.is_ascii_digit()) && !segment.is_empty() {
            key.push_str(&format!("[{segment}]"));
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(segment);
        }
    }
    if key.is_empty() {
        key.push_str("(top level)");
    }
    key
}

fn origin(metadata: &Metadata, path: &[String]) -> String {
    match &metadata.source {
        Some(Source::File(file)) => file.display().to_string(),
        _ if metadata.name.contains("environment") => {
            format!(
                "environment variable WXLOGIN_{}",
                path.join("__").to_ascii_uppercase()
            )
        }
        _ => metadata.name.to_string(),
    }
}

fn kind_of(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "another type",
    }
}

fn one_of(expected: &[&str]) -> String {
    let quoted: Vec<String> = expected.iter().map(|e| format!("`{e}`")).collect();
    match quoted.len() {
        0 => "nothing".to_owned(),
        1 => quoted.concat(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}
