//! The one error body every route answers with, `{"version":"1.0","error":{code,message,field?}}`,
//! and the validation error that names the offending field.

use crate::Version;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Machine-readable error codes (SPEC.md, "Browser to edge: commands").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    TooLarge,
    RateLimited,
    QueueFull,
    HolderUnavailable,
    DeadlineExceeded,
    DiscordError,
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code is answered with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::TooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::QueueFull | ErrorCode::HolderUnavailable => 503,
            ErrorCode::DeadlineExceeded => 504,
            ErrorCode::DiscordError => 502,
            ErrorCode::Internal => 500,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The request field at fault, as a dotted path (`content`, `envelopes[3].version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub version: Version,
    pub error: ErrorDetail,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            version: Version,
            error: ErrorDetail {
                code,
                message: message.into(),
                field: None,
            },
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("error bodies always serialize")
    }
}

/// A request body that is not acceptable, naming the field when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// `None` when the body as a whole is wrong (not JSON, not an object).
    pub field: Option<String>,
    pub message: String,
}

impl ValidationError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ValidationError {}

impl From<ValidationError> for ErrorBody {
    fn from(e: ValidationError) -> Self {
        ErrorBody {
            version: Version,
            error: ErrorDetail {
                code: ErrorCode::InvalidRequest,
                message: e.to_string(),
                field: e.field,
            },
        }
    }
}
