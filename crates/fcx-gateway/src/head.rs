//! Checks of a request head before routing: HTTP/1.1 needs a `Host` header (RFC 9112 §3.2),
//! and no header line may be longer than [`HEADER_LINE_MAX`] (16 KB), each refused with FC's 400
//! `InvalidArgument`.

use axum::body::Body;
use axum::response::IntoResponse;
use fcx_protocol::FcError;

use crate::error::ApiError;
use crate::routes::flavor_of;
use crate::state::new_request_id;

/// The longest header line (name, `: ` and value) a request may carry. HTTP-trigger requests
/// are held to FC's 8 KB for all their headers by the web layer (with its own error shape),
/// so this bound is above that.
pub const HEADER_LINE_MAX: usize = 16 * 1024;

/// The answer refusing `req`'s head, or none when it may be routed.
pub fn refuse<B>(req: &http::Request<B>) -> Option<http::Response<Body>> {
    let error = check(req)?;
    let api = ApiError::new(error, flavor_of(req.uri().path()), &new_request_id());
    let mut resp = api.into_response();
    // The rest of what the client sends is not read: the connection cannot be reused.
    resp.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    Some(resp)
}

fn check<B>(req: &http::Request<B>) -> Option<FcError> {
    if req.version() == http::Version::HTTP_11 && !req.headers().contains_key(http::header::HOST) {
        return Some(
            FcError::invalid_argument(
                "the request has no Host header, which HTTP/1.1 requires (RFC 9112 section 3.2)",
            )
            .with_detail("Field", "Host"),
        );
    }
    for (name, value) in req.headers() {
        let len = name.as_str().len() + 2 + value.len();
        if len > HEADER_LINE_MAX {
            return Some(
                FcError::invalid_argument(format!(
                    "header {name}: the line is {len} bytes, over the limit of \
                     {HEADER_LINE_MAX} bytes per header line"
                ))
                .with_detail("Field", name.as_str()),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: http::Version, headers: &[(&str, String)]) -> http::Request<()> {
        let mut b = http::Request::builder()
            .uri("/2023-03-30/functions")
            .version(version);
        for (n, v) in headers {
            b = b.header(*n, v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn host_is_required_on_http_1_1_only() {
        let none = request(http::Version::HTTP_11, &[]);
        let e = check(&none).expect("refused");
        assert!(e.message.contains("no Host header"), "{}", e.message);
        assert!(check(&request(http::Version::HTTP_10, &[])).is_none());
        assert!(check(&request(http::Version::HTTP_11, &[("host", "fcx".into())])).is_none());
    }

    #[test]
    fn one_long_header_line_is_refused_naming_it() {
        let host = ("host", "fcx".to_owned());
        let at = HEADER_LINE_MAX - "x-big".len() - 2;
        let ok = request(
            http::Version::HTTP_11,
            &[host.clone(), ("x-big", "a".repeat(at))],
        );
        assert!(check(&ok).is_none());
        let over = request(
            http::Version::HTTP_11,
            &[host, ("x-big", "a".repeat(at + 1))],
        );
        let e = check(&over).expect("refused");
        assert_eq!(e.status(), http::StatusCode::BAD_REQUEST);
        assert!(
            e.message.contains("x-big") && e.message.contains("16384"),
            "{}",
            e.message
        );
    }
}
