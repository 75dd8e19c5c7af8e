//! Reads a typed command from a request's path and query parameters: routes name their path
//! parameters as FC does (`{functionName}`, `{aliasName}`, ...), commands name their fields
//! the same way, and serde matches them. A path parameter wins over a query parameter of the
//! same name; query parameters a command does not take are ignored, as FC does.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::reply::Api;

/// A command `C` filled from the request's parameters.
pub struct Params<C>(pub C);

impl<S: Send + Sync, C: DeserializeOwned> FromRequestParts<S> for Params<C> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Query(query) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map_err(IntoResponse::into_response)?;
        let Path(path) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let mut fields: Map<String, Value> = query
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        fields.extend(path.into_iter().map(|(k, v)| (k, Value::String(v))));
        // Every field is a string or an optional one, so only a route that does not name a
        // command's path parameter can fail here.
        serde_json::from_value(Value::Object(fields))
            .map(Params)
            .map_err(|e| {
                let api = Api::fc3();
                api.fail(fcx_protocol::FcError::internal(format!(
                    "route parameters do not fit the command: {e}"
                )))
                .into_response()
            })
    }
}
