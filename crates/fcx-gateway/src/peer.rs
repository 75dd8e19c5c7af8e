//! Requests between nodes sharing a store: how a node signs one (HMAC-SHA256 with the key
//! every node derives from the `secret.key` they share), the layer that accepts a signed one
//! in place of a client's signature and strips the marking headers from every other request
//! (a client cannot pass for a node), and the two uses: ListInstances asking every live node
//! for its instances, and `--forward` sending an invocation this node has no capacity for to
//! a node that has some. A forwarded request is never forwarded again (one hop).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use fcx_control::peers::Peer;
use fcx_control::ControlPlane;
use fcx_protocol::limits;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use sha2::{Digest, Sha256};

use crate::body::read_limited;

/// Every marking header starts so; all are removed from every request before routing.
const PREFIX: &str = "x-fcx-node-";
/// The sending node's id: the mark of a node-to-node request.
pub const FROM: &str = "x-fcx-node-from";
const TIME: &str = "x-fcx-node-time";
const NONCE: &str = "x-fcx-node-nonce";
/// The other headers the signature covers, `;`-separated (the receiver drops the rest).
const SIGNED: &str = "x-fcx-node-headers";
const AUTH: &str = "x-fcx-node-auth";
/// On a forwarded invocation's answer: the node that served it.
pub const FORWARDED_TO: &str = "x-fcx-forwarded-to";

/// How far a node request's time may be from the receiver's clock; its nonce is remembered
/// as long, so within the window a captured request is refused a second time, and after it
/// for its time.
const WINDOW_MS: i64 = 30_000;
/// ListInstances waits this long for each node; a node that has not answered by then is
/// left out (and named in [`MISSING`]).
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// On ListInstances' answer: the live nodes that did not answer in time, `,`-separated.
pub const MISSING: &str = "x-fcx-nodes-missing";

/// Marks a request another node signed (its id); handlers do not forward it again and
/// ListInstances answers for this node only.
#[derive(Debug, Clone)]
pub struct FromNode(pub String);

type HmacSha256 = Hmac<Sha256>;

/// What the signature covers, in order, one item a line.
fn canonical(
    from: &str,
    time_ms: i64,
    nonce: &str,
    method: &Method,
    uri: &Uri,
    headers: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut s = format!(
        "fcx-node-v1\n{from}\n{time_ms}\n{nonce}\n{method}\n{path}\n{}\n",
        hex::encode(Sha256::digest(body))
    );
    for (name, value) in headers {
        s.push_str(name);
        s.push(':');
        s.push_str(value);
        s.push('\n');
    }
    s.into_bytes()
}

fn mac(key: &[u8; 32], text: &[u8]) -> HmacSha256 {
    let mut m = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(text);
    m
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Headers a hop must not pass on, and those a node request sets itself.
fn passed_on(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-connection"
            | "expect"
    ) && !name.as_str().starts_with(PREFIX)
}

/// The headers of `headers` a node request carries (and signs), as `(name, value)` with the
/// values of a repeated header joined by `,`.
fn signed_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for name in headers.keys().filter(|n| passed_on(n)) {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        out.push((name.as_str().to_owned(), values.join(",")));
    }
    out.sort();
    out
}

/// Signs a request from node `from` with `key`: returns the headers to send, `headers`'
/// own (those a hop passes on) and the marking ones.
pub fn sign(
    key: &[u8; 32],
    from: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> HeaderMap {
    let covered = signed_headers(headers);
    let time = now_ms();
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let tag = mac(
        key,
        &canonical(from, time, &nonce, method, uri, &covered, body),
    )
    .finalize()
    .into_bytes();
    let mut out = HeaderMap::new();
    for (name, value) in &covered {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            out.insert(n, v);
        }
    }
    let names: Vec<&str> = covered.iter().map(|(n, _)| n.as_str()).collect();
    let set = |out: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    set(&mut out, FROM, from);
    set(&mut out, TIME, &time.to_string());
    set(&mut out, NONCE, &nonce);
    set(&mut out, SIGNED, &names.join(";"));
    set(&mut out, AUTH, &hex::encode(tag));
    out
}

/// Nonces of node requests accepted within the last [`WINDOW_MS`].
#[derive(Default)]
struct Seen {
    order: VecDeque<(i64, String)>,
    set: HashMap<String, i64>,
}

impl Seen {
    /// Remembers `nonce` (seen at `now`); false when it was seen already.
    fn first(&mut self, nonce: &str, now: i64) -> bool {
        while let Some((t, _)) = self.order.front() {
            if *t > now - 2 * WINDOW_MS {
                break;
            }
            if let Some((_, n)) = self.order.pop_front() {
                self.set.remove(&n);
            }
        }
        if self.set.contains_key(nonce) {
            return false;
        }
        self.set.insert(nonce.to_owned(), now);
        self.order.push_back((now, nonce.to_owned()));
        true
    }
}

fn seen() -> &'static Mutex<Seen> {
    static SEEN: OnceLock<Mutex<Seen>> = OnceLock::new();
    SEEN.get_or_init(Mutex::default)
}

/// Why a marked request is not taken for a node's.
fn check(
    key: &[u8; 32],
    parts: &http::request::Parts,
    body: &[u8],
    now: i64,
) -> Result<String, String> {
    let h = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("{name} is missing"))
    };
    let (from, time, nonce, names, auth) = (h(FROM)?, h(TIME)?, h(NONCE)?, h(SIGNED)?, h(AUTH)?);
    let time: i64 = time
        .parse()
        .map_err(|_| format!("{TIME} is not a number: '{time}'"))?;
    if (now - time).abs() > WINDOW_MS {
        return Err(format!(
            "{TIME} {time} is {} ms from this node's clock (at most {WINDOW_MS})",
            now - time
        ));
    }
    let mut covered: Vec<(String, String)> = Vec::new();
    for name in names.split(';').filter(|n| !n.is_empty()) {
        let values: Vec<&str> = parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        covered.push((name.to_owned(), values.join(",")));
    }
    let tag = hex::decode(auth).map_err(|_| format!("{AUTH} is not hex"))?;
    let text = canonical(from, time, nonce, &parts.method, &parts.uri, &covered, body);
    mac(key, &text)
        .verify_slice(&tag)
        .map_err(|_| "the signature does not match (another secret.key?)".to_string())?;
    let fresh = seen()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .first(nonce, now);
    if !fresh {
        return Err(format!("nonce {nonce} was used already (a replay)"));
    }
    Ok(from.to_owned())
}

/// The paths other nodes may ask with their own signature: invocations (forwarded) and
/// instances (ListInstances). Anything else must carry a client's signature.
fn node_path(method: &Method, path: &str) -> bool {
    path.starts_with("/2023-03-30/functions/")
        && ((method == Method::POST && path.ends_with("/invocations"))
            || (method == Method::GET && path.ends_with("/instances")))
}

/// Whether a request carries node-to-node headers (checked, or stripped, by [`from_node`]).
pub fn is_marked(headers: &http::HeaderMap) -> bool {
    headers.keys().any(|n| n.as_str().starts_with(PREFIX))
}

/// The outermost layer: a request whose node signature holds reaches its handler marked
/// [`FromNode`] (the client signature check lets it pass); from every request the marking
/// headers are removed, so a client's own `x-fcx-node-*` headers mean nothing.
pub async fn from_node(
    State(control): State<Arc<ControlPlane>>,
    req: Request,
    next: Next,
) -> Response {
    if !is_marked(req.headers()) {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let key = control.node_key();
    let candidate = key.filter(|_| node_path(&parts.method, parts.uri.path()));
    let body = match candidate {
        None => body,
        Some(key) => {
            // A node's request is read whole (it was whole on the node that sent it).
            let bytes = match read_limited(body, limits::SYNC_PAYLOAD_MAX).await {
                Ok(b) => b,
                Err(e) => {
                    let flavor = crate::routes::flavor_of(parts.uri.path());
                    return axum::response::IntoResponse::into_response(
                        crate::error::ApiError::new(e, flavor, &crate::state::new_request_id()),
                    );
                }
            };
            match check(&key, &parts, &bytes, now_ms()) {
                Ok(from) => {
                    let names: Vec<String> = parts
                        .headers
                        .get(SIGNED)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .split(';')
                        .map(str::to_owned)
                        .collect();
                    // Only what the signature covers reaches the handler.
                    let keep = |n: &HeaderName| {
                        names.iter().any(|k| k == n.as_str())
                            || matches!(n.as_str(), "host" | "content-length")
                    };
                    let drop: Vec<HeaderName> =
                        parts.headers.keys().filter(|n| !keep(n)).cloned().collect();
                    for n in drop {
                        parts.headers.remove(n);
                    }
                    parts.extensions.insert(FromNode(from));
                }
                Err(why) => {
                    tracing::warn!(path = %parts.uri.path(), "a request marked as another node's is not: {why}");
                }
            }
            Body::from(bytes)
        }
    };
    let marks: Vec<HeaderName> = parts
        .headers
        .keys()
        .filter(|n| n.as_str().starts_with(PREFIX))
        .cloned()
        .collect();
    for n in marks {
        parts.headers.remove(n);
    }
    next.run(Request::from_parts(parts, body)).await
}

fn client() -> &'static Client<HttpConnector, Full<Bytes>> {
    static CLIENT: OnceLock<Client<HttpConnector, Full<Bytes>>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut connector = HttpConnector::new();
        // A node that cannot be reached is given up on quickly.
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        connector.set_nodelay(true);
        Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector)
    })
}

/// Sends `method uri` with `headers` and `body` to `peer`, signed as this node's.
async fn send(
    control: &ControlPlane,
    peer: &Peer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let (Some(key), Some(me)) = (control.node_key(), control.node_id()) else {
        return Err("this node shares no store".into());
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let target: Uri = format!("http://{}{path}", peer.address)
        .parse()
        .map_err(|e| format!("node {} has a bad address '{}': {e}", peer.id, peer.address))?;
    let mut req = http::Request::builder()
        .method(method.clone())
        .uri(target)
        .body(Full::new(body.clone()))
        .map_err(|e| e.to_string())?;
    *req.headers_mut() = sign(&key, me, method, uri, headers, &body);
    client()
        .request(req)
        .await
        .map_err(|e| format!("node {} at {}: {e}", peer.id, peer.address))
}

/// Sends an invocation this node had no capacity for to `peer` and passes its answer on,
/// naming it in [`FORWARDED_TO`]; `Err` when `peer` could not be asked.
pub async fn forward(
    control: &ControlPlane,
    peer: &Peer,
    parts: (&Method, &Uri, &HeaderMap),
    body: Bytes,
) -> Result<Response, String> {
    let (method, uri, headers) = parts;
    let resp = send(control, peer, method, uri, headers, body).await?;
    let (mut head, incoming) = resp.into_parts();
    if let Ok(v) = HeaderValue::from_str(&peer.id) {
        head.headers.insert(FORWARDED_TO, v);
    }
    Ok(Response::from_parts(head, Body::new(incoming)))
}

/// The instances of `function` on every other live node, as they answer ListInstances for
/// themselves (asked at once), and the nodes that did not answer within [`ASK_TIMEOUT`]. A
/// node that does not know the function (yet, or any more) has none.
pub async fn instances_elsewhere(
    control: &Arc<ControlPlane>,
    uri: &Uri,
) -> (Vec<serde_json::Value>, Vec<String>) {
    let mut asks = tokio::task::JoinSet::new();
    for peer in control.peers() {
        let (control, uri) = (Arc::clone(control), uri.clone());
        asks.spawn(async move {
            let answer = tokio::time::timeout(ASK_TIMEOUT, ask(&control, &peer, &uri)).await;
            let answer = answer.unwrap_or_else(|_| {
                Err(format!(
                    "node {} did not answer within {ASK_TIMEOUT:?}",
                    peer.id
                ))
            });
            (peer.id, answer)
        });
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    while let Some(done) = asks.join_next().await {
        match done {
            Ok((_, Ok(list))) => found.extend(list),
            Ok((id, Err(why))) => {
                tracing::warn!("ListInstances leaves out node {id}: {why}");
                missing.push(id);
            }
            Err(e) => tracing::warn!("ListInstances: asking a node failed: {e}"),
        }
    }
    missing.sort();
    (found, missing)
}

/// One node's own instances of the function `uri` names.
async fn ask(
    control: &ControlPlane,
    peer: &Peer,
    uri: &Uri,
) -> Result<Vec<serde_json::Value>, String> {
    let resp = send(
        control,
        peer,
        &Method::GET,
        uri,
        &HeaderMap::new(),
        Bytes::new(),
    )
    .await?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("node {}: {e}", peer.id))?
        .to_bytes();
    if status == http::StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    if !status.is_success() {
        return Err(format!(
            "node {} answered {status}: {}",
            peer.id,
            String::from_utf8_lossy(&body)
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| format!("node {}: not JSON: {e}", peer.id))?;
    Ok(v["instances"].as_array().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_of(headers: HeaderMap, uri: &str) -> http::request::Parts {
        let mut req = http::Request::builder()
            .method(Method::POST)
            .uri(uri)
            .body(())
            .unwrap();
        *req.headers_mut() = headers;
        req.into_parts().0
    }

    #[test]
    fn a_signed_request_holds_once_and_nothing_in_it_can_change() {
        let key = [7u8; 32];
        let uri: Uri = "/2023-03-30/functions/f/invocations?qualifier=LATEST"
            .parse()
            .unwrap();
        let mut client = HeaderMap::new();
        client.insert("x-fc-log-type", HeaderValue::from_static("Tail"));
        client.insert("connection", HeaderValue::from_static("close"));
        let signed = sign(&key, "node-a", &Method::POST, &uri, &client, b"body");
        assert!(signed.get("connection").is_none());
        let now = now_ms();
        // Another body, header or key: refused.
        let p = parts_of(signed.clone(), uri.path_and_query().unwrap().as_str());
        assert!(check(&key, &p, b"other", now).is_err());
        assert!(check(&[8u8; 32], &p, b"body", now).is_err());
        let mut changed = signed.clone();
        changed.insert("x-fc-log-type", HeaderValue::from_static("None"));
        let p2 = parts_of(changed, uri.path_and_query().unwrap().as_str());
        assert!(check(&key, &p2, b"body", now).is_err());
        // Too old: refused.
        assert!(check(&key, &p, b"body", now + WINDOW_MS + 1).is_err());
        // As sent: taken, once.
        assert_eq!(check(&key, &p, b"body", now).unwrap(), "node-a");
        let again = check(&key, &p, b"body", now).unwrap_err();
        assert!(again.contains("replay"), "{again}");
    }

    #[test]
    fn only_invocations_and_instances_take_a_node_signature() {
        assert!(node_path(
            &Method::POST,
            "/2023-03-30/functions/f/invocations"
        ));
        assert!(node_path(&Method::GET, "/2023-03-30/functions/f/instances"));
        assert!(!node_path(&Method::DELETE, "/2023-03-30/functions/f"));
        assert!(!node_path(
            &Method::GET,
            "/2023-03-30/functions/f/invocations"
        ));
        assert!(!node_path(&Method::POST, "/2023-03-30/functions"));
    }
}
