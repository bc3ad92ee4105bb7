//! `GET /weixin` (URL verification) and `POST /weixin` (messages).
//! PROTOCOL §1.1 and §2.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::Span;

use super::{ApiError, AppState};
use crate::callback::CallbackQuery;

fn query(q: Result<Query<CallbackQuery>, QueryRejection>) -> Result<CallbackQuery, ApiError> {
    q.map(|Query(q)| q).map_err(|_| ApiError::BadQuery)
}

fn refuse(e: ApiError) -> Response {
    let span = Span::current();
    span.record("outcome", e.label());
    if e.status() == StatusCode::FORBIDDEN {
        tracing::warn!(reason = e.label(), "refused");
    } else {
        tracing::info!(reason = e.label(), "rejected");
    }
    if let ApiError::Callback(inner) = &e {
        tracing::debug!(error = %inner, "refusal detail");
    }
    e.into_response()
}

/// URL verification: echo `echostr` when the signature holds.
pub(super) async fn verify(
    State(state): State<AppState>,
    q: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let result = query(q).and_then(|q| state.callback().verify_url(&q).map_err(ApiError::from));
    match result {
        Ok(echostr) => {
            Span::current().record("outcome", "verified");
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                echostr,
            )
                .into_response()
        }
        Err(e) => refuse(e),
    }
}

/// A message or event: answer with the reply the rules choose.
pub(super) async fn receive(
    State(state): State<AppState>,
    q: Result<Query<CallbackQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let q = match query(q) {
        Ok(q) => q,
        Err(e) => return refuse(e),
    };
    let body = match body {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(ApiError::TooLarge)
        }
        Err(_) => return refuse(ApiError::BadBody),
    };
    let rules = state.rules();
    match state.callback().handle(&q, &body, &rules) {
        Ok((inbound, outcome)) => {
            let span = Span::current();
            span.record("msg_type", inbound.message.msg_type.as_str());
            span.record(
                "outcome",
                if outcome.reply_type.is_some() {
                    "replied"
                } else {
                    "success"
                },
            );
            tracing::debug!(
                rule = outcome.rule.as_deref().unwrap_or("-"),
                reply = outcome.reply_type.unwrap_or("success"),
                "handled"
            );
            let content_type = if outcome.reply_type.is_some() {
                "application/xml; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            ([(header::CONTENT_TYPE, content_type)], outcome.body).into_response()
        }
        Err(e) => refuse(ApiError::from(e)),
    }
}
