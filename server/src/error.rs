//! One error type for every handler; each variant maps to a status and an [`ApiError`] body.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use distillery_api::ApiError;

/// What a handler can fail with. Internal errors are logged and shown only as a generic message.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest {
        message: String,
        field: Option<String>,
    },
    /// A rejected request (bad path, query or body) with the status the extractor chose.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("login required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// A 400 naming the offending field.
    pub fn bad(field: &str, message: impl Into<String>) -> Self {
        AppError::BadRequest {
            message: message.into(),
            field: Some(field.to_string()),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            AppError::BadRequest { message, field } => (
                StatusCode::BAD_REQUEST,
                ApiError {
                    error: message.clone(),
                    field: field.clone(),
                },
            ),
            AppError::Rejected { status, message } => (
                *status,
                ApiError {
                    error: message.clone(),
                    field: None,
                },
            ),
            AppError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                ApiError {
                    error: "login required".into(),
                    field: None,
                },
            ),
            AppError::Forbidden(message) => (
                StatusCode::FORBIDDEN,
                ApiError {
                    error: message.clone(),
                    field: None,
                },
            ),
            AppError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                ApiError {
                    error: format!("{what} not found"),
                    field: None,
                },
            ),
            AppError::Conflict(message) => (
                StatusCode::CONFLICT,
                ApiError {
                    error: message.clone(),
                    field: None,
                },
            ),
            AppError::Database(_) | AppError::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ApiError {
                        error: "something went wrong".into(),
                        field: None,
                    },
                )
            }
        };
        (status, Json(body)).into_response()
    }
}
