//! One request's answer context for the management handlers: its request id, FC-shaped
//! errors (FC 3.0 body keys), and JSON answers carrying `x-fc-request-id`. Modules add their
//! own lookups in further `impl Ctx` blocks.

use axum::response::{IntoResponse, Response};
use axum::Json;
use fcx_model::{Function, ModelError};
use fcx_protocol::{headers, ApiFlavor, FcError};
use http::{HeaderValue, StatusCode};
use serde_json::Value;

use crate::error::ApiError;
use crate::state::{new_request_id, App};

/// A handler's result.
pub type Reply = Result<Response, ApiError>;

pub struct Ctx {
    pub rid: String,
}

impl Ctx {
    pub fn new() -> Ctx {
        Ctx {
            rid: new_request_id(),
        }
    }

    pub fn fail(&self, e: impl crate::error::IntoFcError) -> ApiError {
        ApiError::new(e, ApiFlavor::Fc3, &self.rid)
    }

    /// 400 InvalidArgument naming the field.
    pub fn model(&self, e: ModelError) -> ApiError {
        self.fail(FcError::invalid_argument(e.to_string()).with_detail("Field", e.field))
    }

    pub fn internal(&self, e: impl ToString) -> ApiError {
        self.fail(FcError::internal(e.to_string()))
    }

    /// `status` with an optional JSON body and the request id header.
    pub fn ok(&self, status: StatusCode, body: Option<Value>) -> Response {
        let mut r = match body {
            Some(b) => (status, Json(b)).into_response(),
            None => status.into_response(),
        };
        if let Ok(v) = HeaderValue::from_str(&self.rid) {
            r.headers_mut().insert(headers::REQUEST_ID, v);
        }
        r
    }

    /// The stored function, or FunctionNotFound.
    pub fn function(&self, app: &App, name: &str) -> Result<Function, ApiError> {
        app.store
            .get_function(name)
            .map_err(|e| self.internal(e))?
            .ok_or_else(|| self.fail(FcError::function_not_found(name)))
    }

    /// The function's ARN, or FunctionNotFound.
    pub fn function_arn(&self, app: &App, name: &str) -> Result<String, ApiError> {
        self.function(app, name).map(|f| f.function_arn)
    }
}
