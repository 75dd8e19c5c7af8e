//! Verifying one signed request: its headers first (nothing read yet), then its body hash,
//! then its nonce.

use fcx_protocol::FcError;
use fcx_sign::{header, ALGORITHM};
use http::HeaderMap;

use super::keys::Keys;
use super::nonce::{fingerprint, NonceCache, Replay};

/// How far `x-acs-date` may be from the server's clock, either way.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
/// Nonces remembered at most (about 40 MB when full).
pub const NONCE_CAPACITY: usize = 500_000;

pub use header::{AUTHORIZATION, CONTENT_SHA256, DATE, NONCE};

/// Headers every signature must cover (the SDKs sign these and more); besides them, every
/// `x-acs-*` header the request carries must be signed.
const MUST_SIGN: [&str; 4] = ["host", DATE, NONCE, CONTENT_SHA256];

/// Checks signed requests against the AccessKeys and remembers their nonces.
pub struct Verifier {
    keys: Keys,
    nonces: NonceCache,
    /// Requests signed before this (unix seconds) are refused: set after a host reboot,
    /// when the nonce journal may have lost its last second.
    signed_after: i64,
    /// With a shared store: the nonces every node accepted, so a request replayed to another
    /// node is refused too.
    shared: Option<fcx_store::postgres::nonces::PgNonces>,
}

/// What a request's headers proved; its body and nonce are checked next.
#[derive(Debug)]
pub struct Checked {
    /// The AccessKey the request was signed with.
    pub key_id: String,
    nonce: String,
    content_sha256: String,
    date: i64,
}

/// A parsed `Authorization: ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..`.
struct Authorization<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

impl Verifier {
    /// A verifier whose nonces outlive restarts: `journal` holds them, `loaded` is what it
    /// held at start, `started` the server's start (unix seconds).
    pub fn durable(
        keys: Keys,
        journal: fcx_store::NonceJournal,
        loaded: &fcx_store::nonces::Loaded,
        started: i64,
    ) -> Verifier {
        if loaded.after_reboot {
            tracing::warn!(
                "the host restarted since the nonce journal was written: requests signed \
                 before this server's start are refused"
            );
        }
        Verifier {
            keys,
            nonces: NonceCache::durable(NONCE_CAPACITY, journal, &loaded.nonces),
            signed_after: if loaded.after_reboot {
                started
            } else {
                i64::MIN
            },
            shared: None,
        }
    }

    /// Also claims every nonce in the nodes' shared store (one INSERT per signed request),
    /// so no node accepts a request another node already accepted.
    pub fn shared_with(mut self, nonces: Option<fcx_store::postgres::nonces::PgNonces>) -> Self {
        self.shared = nonces;
        self
    }

    /// Checks everything but the body: the signing headers are there, the key exists, the
    /// date is within the skew window and the signature matches.
    pub async fn check_headers(
        &self,
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        now: i64,
    ) -> Result<Checked, FcError> {
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or(""));
        let required = |name: &'static str| {
            header(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| FcError::missing_required_header(name))
        };
        let authorization = header(AUTHORIZATION)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| FcError::missing_required_header("Authorization"))?;
        let date = required(DATE)?;
        let nonce = required(NONCE)?;
        let content_sha256 = required(CONTENT_SHA256)?;
        let auth = parse_authorization(authorization)?;

        let secret = self
            .keys
            .secret(auth.credential)
            .await
            .map_err(|e| FcError::internal(format!("reading access keys: {e}")))?
            .ok_or_else(|| FcError::invalid_access_key_id(auth.credential))?;

        let date_secs = fcx_sign::parse_date(date).ok_or_else(|| {
            FcError::signature_not_match(format!(
                "x-acs-date '{date}' is not an ISO 8601 UTC time such as 2026-01-01T00:00:00Z"
            ))
        })?;
        if (date_secs - now).abs() > MAX_SKEW_SECS {
            return Err(FcError::signature_not_match(format!(
                "x-acs-date '{date}' is more than {} minutes away from the server's time ({}): \
                 check the client's clock",
                MAX_SKEW_SECS / 60,
                fcx_sign::format_date(now.max(0) as u64)
            )));
        }

        if date_secs < self.signed_after {
            return Err(FcError::signature_not_match(format!(
                "x-acs-date '{date}' is before this server started ({}) after a host restart, \
                 when it may have lost the nonces it had seen: sign the request again",
                fcx_sign::format_date(self.signed_after.max(0) as u64)
            )));
        }
        let signed: Vec<&str> = auth.signed_headers.split(';').collect();
        if signed
            .iter()
            .any(|n| n.is_empty() || *n != n.to_ascii_lowercase())
            || signed.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(FcError::signature_not_match(format!(
                "SignedHeaders '{}' must be lowercase header names, sorted, separated by ';'",
                auth.signed_headers
            )));
        }
        let acs_headers = headers
            .keys()
            .map(|n| n.as_str())
            .filter(|n| n.starts_with("x-acs-"));
        for name in MUST_SIGN.into_iter().chain(acs_headers) {
            if signed.binary_search(&name).is_err() {
                return Err(FcError::signature_not_match(format!(
                    "header '{name}' must be signed: SignedHeaders is '{}'",
                    auth.signed_headers
                )));
            }
        }

        let canonical_headers = fcx_sign::canonical_headers(&signed, |name| {
            headers.get_all(name).iter().map(|v| v.as_bytes()).collect()
        });
        let request = fcx_sign::canonical_request(
            method,
            path,
            &fcx_sign::canonical_query(query),
            &canonical_headers,
            auth.signed_headers,
            content_sha256,
        );
        let string_to_sign = fcx_sign::string_to_sign(&request);
        if !fcx_sign::signature_matches(&secret, &string_to_sign, auth.signature) {
            return Err(FcError::signature_not_match(
                "the request signature we calculated does not match the signature you \
                 provided: check your AccessKey secret and signing method",
            )
            .with_detail("CanonicalRequest", request)
            .with_detail("StringToSign", string_to_sign));
        }
        Ok(Checked {
            key_id: auth.credential.to_owned(),
            nonce: nonce.to_owned(),
            content_sha256: content_sha256.trim().to_ascii_lowercase(),
            date: date_secs,
        })
    }

    /// The body is the one the signature covers.
    pub fn check_body(&self, checked: &Checked, body: &[u8]) -> Result<(), FcError> {
        let actual = fcx_sign::hashed_payload(body);
        if actual != checked.content_sha256 {
            return Err(FcError::signature_not_match(format!(
                "x-acs-content-sha256 '{}' is not the SHA-256 of the body received ({actual}, {} \
                 bytes)",
                checked.content_sha256,
                body.len()
            )));
        }
        Ok(())
    }

    /// Refuses a nonce this key already used within the skew window (on this node, or on
    /// any node sharing the store).
    pub async fn remember_nonce(&self, checked: &Checked, now: i64) -> Result<(), FcError> {
        let expires = checked.date + MAX_SKEW_SECS;
        let seen = || {
            FcError::signature_not_match(format!(
                "x-acs-signature-nonce '{}' was already used: every request needs a new nonce",
                checked.nonce
            ))
        };
        let local = self
            .nonces
            .check_and_insert(&checked.key_id, &checked.nonce, expires, now);
        if let (Ok(()), Some(shared)) = (&local, &self.shared) {
            // The local cache refused what this node saw; the store knows the other nodes'.
            let print = fingerprint(&checked.key_id, &checked.nonce);
            return match shared.claim(print, expires, now).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(seen()),
                Err(e) => Err(FcError::new(
                    fcx_protocol::ErrorCode::NodeOutOfSync,
                    format!(
                        "cannot check x-acs-signature-nonce against the other nodes (the shared \
                         store did not answer: {e}): send the request again, with a new nonce"
                    ),
                )),
            };
        }
        match local {
            Ok(()) => Ok(()),
            Err(Replay::Seen) => Err(seen()),
            Err(Replay::TooOld) => Err(FcError::signature_not_match(
                "x-acs-date is too old for the nonces this server can still remember under the \
                 current request rate: send the request again with the current time",
            )),
        }
    }
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, FcError> {
    let malformed = || {
        FcError::signature_not_match(format!(
            "Authorization must be '{ALGORITHM} Credential=<AccessKeyId>,\
             SignedHeaders=<a;b;c>,Signature=<hex>'"
        ))
    };
    let (algorithm, rest) = value.trim().split_once(' ').ok_or_else(malformed)?;
    if algorithm != ALGORITHM {
        return Err(FcError::signature_not_match(format!(
            "signature algorithm '{algorithm}' is not supported: fcx verifies {ALGORITHM}"
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or_else(malformed)?;
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed_headers = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    match (credential, signed_headers, signature) {
        (Some(c), Some(h), Some(s)) if !c.is_empty() && !h.is_empty() && !s.is_empty() => {
            Ok(Authorization {
                credential: c,
                signed_headers: h,
                signature: s,
            })
        }
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_parses_and_names_what_is_wrong() {
        let a = parse_authorization(
            "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host;x-acs-date,Signature=ab",
        )
        .ok()
        .unwrap();
        assert_eq!(
            (a.credential, a.signed_headers, a.signature),
            ("ak", "host;x-acs-date", "ab")
        );
        let e = parse_authorization("ACS3-HMAC-SM3 Credential=ak,SignedHeaders=h,Signature=s")
            .err()
            .unwrap();
        assert!(
            e.message.contains("'ACS3-HMAC-SM3' is not supported"),
            "{e}"
        );
        assert!(parse_authorization("ACS3-HMAC-SHA256 Credential=ak").is_err());
        assert!(parse_authorization("Bearer x").is_err());
    }
}
