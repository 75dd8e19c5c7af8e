//! Signed requests for servers started with `--auth signature`: `ACS3-HMAC-SHA256` headers
//! as the FC 3.0 SDKs send them (e2e_auth.rs proves the scheme against the SDK itself).

use super::Credentials;

/// The headers that sign `method path?query` with `body` for `host`, besides `extra`
/// (which are signed too when they are `x-acs-*`).
pub fn headers(
    key: &Credentials,
    host: &str,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Vec<(String, String)> {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nonce = format!(
        "{}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4(),
        NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let date = fcx_sign::now_date();
    let sha = fcx_sign::hashed_payload(body);
    let signed: Vec<(&str, &str)> = vec![
        ("host", host),
        ("x-acs-content-sha256", &sha),
        ("x-acs-date", &date),
        ("x-acs-signature-nonce", &nonce),
        ("x-acs-version", "2023-03-30"),
    ];
    let auth = fcx_sign::Request {
        method,
        path,
        raw_query: query,
        headers: &signed,
        hashed_payload: &sha,
    }
    .authorization(&fcx_sign::AccessKey {
        id: &key.id,
        secret: &key.secret,
    });
    let mut out: Vec<(String, String)> = signed
        .iter()
        .filter(|(n, _)| *n != "host")
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    out.push(("authorization".into(), auth));
    out
}
