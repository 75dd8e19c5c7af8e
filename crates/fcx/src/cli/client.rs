//! A small signed HTTP client for the FC 3.0 API (2023-03-30): requests are signed with
//! ACS3-HMAC-SHA256 as the FC SDKs sign them (or sent unsigned to `--auth none` servers).

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{anyhow, Context as _};
use bytes::Bytes;
use fcx_sign::header;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

/// The API version every request names.
pub const API_VERSION: &str = "2023-03-30";

/// Where the server is and how to sign.
#[derive(Clone, Debug)]
pub struct Config {
    pub endpoint: String,
    /// (AccessKey id, secret); `None` sends unsigned requests.
    pub credentials: Option<(String, String)>,
}

/// Reads `access_key_id=` / `access_key_secret=` lines (the server's credentials file).
pub fn read_credentials_file(path: &Path) -> anyhow::Result<(String, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading credentials file {}", path.display()))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .ok_or_else(|| anyhow!("{} has no {name} line", path.display()))
    };
    Ok((field("access_key_id=")?, field("access_key_secret=")?))
}

/// An FC error body (`{"Code","Message","RequestId"}`) with its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if !self.request_id.is_empty() {
            write!(f, " (request {})", self.request_id)?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Whether the request was refused for its signature or AccessKey.
    pub fn is_auth(&self) -> bool {
        self.status == 401
            || self.status == 403
            || ["Signature", "AccessKey", "Authorization", "Nonce"]
                .iter()
                .any(|w| self.code.contains(w))
            // An unsigned request to a server that wants signatures.
            || (self.code == "MissingRequiredHeader"
                && (self.message.contains("Authorization") || self.message.contains("x-acs-")))
    }

    pub fn from_response(r: &Response) -> ApiError {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
        let mut e = ApiError {
            status: r.status,
            code: s("Code"),
            message: s("Message"),
            request_id: s("RequestId"),
        };
        if e.code.is_empty() {
            e.code = format!("HTTP{}", r.status);
            e.message = String::from_utf8_lossy(&r.body).trim().to_owned();
        }
        if e.request_id.is_empty() {
            e.request_id = r.header("x-fc-request-id").unwrap_or("").to_owned();
        }
        e
    }
}

/// A response: status, headers, whole body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        if self.body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body).context("the server answered with invalid JSON")
    }
}

/// The signed client; blocking calls on its own small runtime.
pub struct Client {
    config: Config,
    scheme: String,
    authority: String,
    runtime: tokio::runtime::Runtime,
}

/// Called with (bytes sent, total) while a request body is uploaded.
pub type Progress = Box<dyn FnMut(u64, u64) + Send>;

impl Client {
    pub fn new(config: Config) -> anyhow::Result<Client> {
        let uri: http::Uri = config
            .endpoint
            .parse()
            .with_context(|| format!("invalid endpoint {:?}", config.endpoint))?;
        let scheme = uri.scheme_str().unwrap_or("http").to_owned();
        if scheme != "http" {
            anyhow::bail!("endpoint {}: only http:// is supported", config.endpoint);
        }
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("endpoint {} has no host", config.endpoint))?
            .to_string();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Client {
            config,
            scheme,
            authority,
            runtime,
        })
    }

    /// A request for `action` (the `x-acs-action` it is signed with) at `path`; add a query,
    /// headers and a body, then [`RequestBuilder::call`] or [`RequestBuilder::send`] it.
    pub fn request(
        &self,
        method: http::Method,
        action: &'static str,
        path: impl Into<String>,
    ) -> RequestBuilder<'_> {
        RequestBuilder {
            client: self,
            method,
            action,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
            progress: None,
        }
    }

    /// A GET request (see [`Client::request`]).
    pub fn get(&self, action: &'static str, path: impl Into<String>) -> RequestBuilder<'_> {
        self.request(http::Method::GET, action, path)
    }

    /// A POST request (see [`Client::request`]).
    pub fn post(&self, action: &'static str, path: impl Into<String>) -> RequestBuilder<'_> {
        self.request(http::Method::POST, action, path)
    }

    /// A PUT request (see [`Client::request`]).
    pub fn put(&self, action: &'static str, path: impl Into<String>) -> RequestBuilder<'_> {
        self.request(http::Method::PUT, action, path)
    }

    /// A DELETE request (see [`Client::request`]).
    pub fn delete(&self, action: &'static str, path: impl Into<String>) -> RequestBuilder<'_> {
        self.request(http::Method::DELETE, action, path)
    }

    /// Signs and sends `req`; any answer comes back as it is.
    fn execute(&self, req: RequestBuilder<'_>) -> anyhow::Result<Response> {
        let raw_query: String = req
            .query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    fcx_sign::percent_encode(k),
                    fcx_sign::percent_encode(v)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let uri = if raw_query.is_empty() {
            format!("{}://{}{}", self.scheme, self.authority, req.path)
        } else {
            format!(
                "{}://{}{}?{}",
                self.scheme, self.authority, req.path, raw_query
            )
        };
        let hashed = fcx_sign::hashed_payload(&req.body);
        let date = fcx_sign::now_date();
        let nonce = uuid::Uuid::new_v4().to_string();
        let signed: Vec<(&str, &str)> = vec![
            ("host", &self.authority),
            (header::ACTION, req.action),
            (header::CONTENT_SHA256, &hashed),
            (header::DATE, &date),
            (header::NONCE, &nonce),
            (header::VERSION, API_VERSION),
        ];
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(&uri);
        for (k, v) in &signed {
            builder = builder.header(*k, *v);
        }
        for (k, v) in &req.headers {
            builder = builder.header(*k, v);
        }
        if !req.body.is_empty()
            && !req
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            builder = builder.header("content-type", "application/json");
        }
        builder = builder.header("user-agent", concat!("fcx/", env!("CARGO_PKG_VERSION")));
        if let Some((id, secret)) = &self.config.credentials {
            let auth = fcx_sign::Request {
                method: req.method.as_str(),
                path: &req.path,
                raw_query: (!raw_query.is_empty()).then_some(raw_query.as_str()),
                headers: &signed,
                hashed_payload: &hashed,
            }
            .authorization(&fcx_sign::AccessKey { id, secret });
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        let request = builder.body(ProgressBody::new(req.body, req.progress))?;
        let endpoint = self.config.endpoint.clone();
        self.runtime.block_on(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<ProgressBody>();
            let resp = client
                .request(request)
                .await
                .map_err(|e| anyhow!("cannot reach {endpoint}: {}", chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| anyhow!("reading the answer of {endpoint}: {e}"))?
                .to_bytes();
            Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        })
    }
}

/// One API request being put together: `client.get("GetFunction", path).call()`.
#[must_use = "a request does nothing until it is sent with .call() or .send()"]
pub struct RequestBuilder<'c> {
    client: &'c Client,
    method: http::Method,
    action: &'static str,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    progress: Option<Progress>,
}

impl RequestBuilder<'_> {
    /// Adds a query parameter (percent-encoded and signed).
    pub fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_owned(), value.into()));
        self
    }

    /// Adds a query parameter when `value` is `Some`.
    pub fn query_opt(self, key: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.query(key, v),
            None => self,
        }
    }

    /// Adds a header (sent, not signed: fcx signs `host` and the `x-acs-*` headers).
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The body as it is (`content-type` defaults to `application/json` for a non-empty one).
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// A JSON body.
    pub fn json(self, value: &serde_json::Value) -> Self {
        self.body(value.to_string().into_bytes())
    }

    /// Reports upload progress of the body to `progress`.
    pub fn progress(mut self, progress: Option<Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Sends the request and returns any answer as it is (callers that read function errors
    /// from non-2xx answers, such as InvokeFunction).
    pub fn send(self) -> anyhow::Result<Response> {
        self.client.execute(self)
    }

    /// Sends the request; a non-2xx answer becomes an [`ApiError`].
    pub fn call(self) -> anyhow::Result<Response> {
        let r = self.send()?;
        if !(200..300).contains(&r.status) {
            return Err(ApiError::from_response(&r).into());
        }
        Ok(r)
    }
}

/// An error and its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Percent-encodes a path segment (function, alias names).
pub fn seg(s: &str) -> String {
    fcx_sign::percent_encode(s)
}

/// `/2023-03-30/functions`.
pub fn functions_path() -> String {
    format!("/{API_VERSION}/functions")
}

/// `/2023-03-30/functions/<name>`, the name percent-encoded.
pub fn function_path(name: &str) -> String {
    format!("{}/{}", functions_path(), seg(name))
}

/// A request body sent in chunks, reporting progress.
pub struct ProgressBody {
    data: Bytes,
    sent: usize,
    progress: Option<Progress>,
}

const CHUNK: usize = 64 * 1024;

impl ProgressBody {
    fn new(data: Vec<u8>, progress: Option<Progress>) -> Self {
        ProgressBody {
            data: Bytes::from(data),
            sent: 0,
            progress,
        }
    }
}

impl Body for ProgressBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.sent >= this.data.len() {
            return Poll::Ready(None);
        }
        let end = (this.sent + CHUNK).min(this.data.len());
        let chunk = this.data.slice(this.sent..end);
        this.sent = end;
        if let Some(p) = this.progress.as_mut() {
            p(this.sent as u64, this.data.len() as u64);
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.data.len()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact((self.data.len() - self.sent) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_bodies() {
        let r = Response {
            status: 404,
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(
                br#"{"Code":"FunctionNotFound","Message":"no f","RequestId":"r1"}"#,
            ),
        };
        let e = ApiError::from_response(&r);
        assert_eq!(e.to_string(), "FunctionNotFound: no f (request r1)");
        assert!(!e.is_auth());
    }
}
