//! The status page: `GET /status`, a static HTML+JS page (no data in
//! it, so it is served without authentication) that reads `GET /status/data` (the control
//! plane's [`GetStatus`], behind the API's authentication) every 2 s. With `--auth
//! signature` the page asks for an AccessKey and signs its calls in the browser with
//! WebCrypto (ACS3-HMAC-SHA256, as `fcx-sign`); the secret never leaves the browser.

use axum::response::{Html, IntoResponse, Response};
use http::{header, HeaderValue};

pub const PAGE: &str = "/status";
pub const DATA: &str = "/status/data";

const HTML: &str = include_str!("status.html");

pub async fn page() -> Response {
    let mut r = Html(HTML).into_response();
    let h = r.headers_mut();
    // The page runs only its own inline script and talks only to this server.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
