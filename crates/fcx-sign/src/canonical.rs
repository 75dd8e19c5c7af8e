//! The pieces of the canonical request, the string to sign and the HMAC, as the SDKs build
//! them:
//!
//! - CanonicalURI: the path as sent (the SDKs percent-encode path parameters themselves and
//!   sign that string), `/` when empty.
//! - CanonicalQueryString: `key=value` pairs sorted by key, values RFC 3986-encoded (only
//!   `A-Z a-z 0-9 - _ . ~` stay as they are; space is `%20`), joined by `&`. On the wire the
//!   Python SDK sends `urlencode`d values (space as `+`), so a verifier decodes first.
//! - CanonicalHeaders: for each signed header, in sorted order, `name:value\n` with the name
//!   lowercased and the value trimmed; repeated headers are sorted and joined with `,`.
//! - HashedPayload: the request's `x-acs-content-sha256` (hex SHA-256 of the body).

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::ALGORITHM;

type HmacSha256 = hmac::Hmac<Sha256>;

/// RFC 3986 percent-encoding of every byte but the unreserved `A-Z a-z 0-9 - _ . ~`
/// (Python's `quote(v, safe='~')`, JavaScript's `encodeURIComponent` plus `!'()*`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes and, as in `application/x-www-form-urlencoded`, `+` as a space.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The canonical query string of a raw query (`a=1&b=x+y`), as the signer saw the
/// parameters before they were put on the wire.
pub fn canonical_query(raw: Option<&str>) -> String {
    let Some(raw) = raw.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_encode(&form_decode(k)),
                percent_encode(&form_decode(v)),
            )
        })
        .collect();
    pairs.sort();
    let parts: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join("&")
}

/// `name:value\n` for each signed header (already lowercased and sorted), from `values`
/// giving every value a header has in the request.
pub fn canonical_headers<'a, F>(signed: &[&str], mut values: F) -> String
where
    F: FnMut(&str) -> Vec<&'a [u8]>,
{
    let mut out = String::new();
    for name in signed {
        let mut vals: Vec<String> = values(name)
            .into_iter()
            .map(|v| String::from_utf8_lossy(v).trim().to_owned())
            .collect();
        vals.sort();
        out.push_str(name);
        out.push(':');
        out.push_str(&vals.join(","));
        out.push('\n');
    }
    out
}

/// The canonical request the signature covers.
pub fn canonical_request(
    method: &str,
    path: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    hashed_payload: &str,
) -> String {
    let uri = if path.is_empty() { "/" } else { path };
    format!(
        "{method}\n{uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{hashed_payload}"
    )
}

/// `ACS3-HMAC-SHA256\n<hex sha256 of the canonical request>`.
pub fn string_to_sign(canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

fn mac(secret: &str) -> HmacSha256 {
    // HMAC takes keys of any length: `new_from_slice` cannot fail for it.
    <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
}

/// The raw HMAC-SHA256 of `string_to_sign` under `secret` (hex-encode it for the header).
pub fn signature(secret: &str, string_to_sign: &str) -> Vec<u8> {
    let mut mac = mac(secret);
    mac.update(string_to_sign.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Whether `signature_hex` is the signature of `string_to_sign` under `secret`, compared in
/// constant time.
pub fn signature_matches(secret: &str, string_to_sign: &str, signature_hex: &str) -> bool {
    let Ok(given) = hex::decode(signature_hex) else {
        return false;
    };
    let mut mac = mac(secret);
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("aZ09-_.~"), "aZ09-_.~");
        assert_eq!(percent_encode("a b*/+!'()"), "a%20b%2A%2F%2B%21%27%28%29");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn query_is_decoded_sorted_and_re_encoded() {
        assert_eq!(canonical_query(None), "");
        assert_eq!(canonical_query(Some("")), "");
        assert_eq!(
            canonical_query(Some("prefix=a+b%7E%2A&limit=10&nextToken=")),
            "limit=10&nextToken=&prefix=a%20b~%2A"
        );
        assert_eq!(canonical_query(Some("flag")), "flag=");
        assert_eq!(canonical_query(Some("a=%zz%4")), "a=%25zz%254");
    }

    #[test]
    fn headers_are_trimmed_and_repeated_values_sorted() {
        let h = canonical_headers(&["host", "x-acs-a"], |n| match n {
            "host" => vec![b" h:1 ".as_slice()],
            _ => vec![b"b".as_slice(), b"a".as_slice()],
        });
        assert_eq!(h, "host:h:1\nx-acs-a:a,b\n");
    }

    #[test]
    fn an_empty_path_signs_as_slash() {
        assert!(canonical_request("GET", "", "", "", "host", "x").starts_with("GET\n/\n"));
    }

    #[test]
    fn signatures_verify_only_with_the_same_secret_and_text() {
        let sig = hex::encode(signature("sk", "text"));
        assert!(signature_matches("sk", "text", &sig));
        assert!(!signature_matches("sk2", "text", &sig));
        assert!(!signature_matches("sk", "text2", &sig));
        assert!(!signature_matches("sk", "text", "not hex"));
    }
}
