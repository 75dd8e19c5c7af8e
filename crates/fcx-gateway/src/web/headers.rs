//! FC's restrictions on HTTP-trigger traffic (fc-protocol.md §8): the request's headers
//! (8 KB) and path with query (4 KB) are bounded, client `x-fc-*`, `connection` and
//! `keep-alive` headers are not forwarded (nor the other hop-by-hop ones), the reserved
//! headers a function sets are dropped, and an answer whose headers pass 8 KB is refused.

use fcx_protocol::FcError;
use http::header::{self, HeaderName};
use http::HeaderMap;

/// Most bytes of a request's header names and values together.
pub const REQUEST_HEADERS_MAX: usize = 8 * 1024;
/// Most bytes of a request's path and query.
pub const PATH_AND_QUERY_MAX: usize = 4 * 1024;
/// Most bytes of an answer's header names and values together.
pub const RESPONSE_HEADERS_MAX: usize = 8 * 1024;

/// Header names and values, in bytes.
pub fn size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum()
}

/// Refuses a request over FC's limits, naming the limit.
pub fn check_request(uri: &http::Uri, headers: &HeaderMap) -> Result<(), FcError> {
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > PATH_AND_QUERY_MAX {
        return Err(FcError::invalid_argument(format!(
            "the request's path and query are {target} bytes, more than the \
             {PATH_AND_QUERY_MAX} bytes HTTP triggers accept"
        ))
        .with_detail("Limit", PATH_AND_QUERY_MAX));
    }
    let total = size(headers);
    if total > REQUEST_HEADERS_MAX {
        return Err(FcError::invalid_argument(format!(
            "the request's headers are {total} bytes, more than the {REQUEST_HEADERS_MAX} \
             bytes HTTP triggers accept"
        ))
        .with_detail("Limit", REQUEST_HEADERS_MAX));
    }
    Ok(())
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) besides `connection` and `keep-alive`.
const HOP_BY_HOP: [HeaderName; 4] = [
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::PROXY_AUTHORIZATION,
];

/// Removes what FC does not forward to the function. For an upgrade, `connection` and
/// `upgrade` stay so that the function sees the handshake.
pub fn strip_request(headers: &mut HeaderMap, upgrade: bool) {
    strip_fc(headers);
    if !upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
    headers.remove(HeaderName::from_static("keep-alive"));
    headers.remove(HeaderName::from_static("proxy-connection"));
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Drops the headers FC reserves from a function's answer: `x-fc-*`, `connection`,
/// `content-length` (the server frames the body itself), `date`, `keep-alive`, `server`.
/// A `101` keeps `connection` and `upgrade`; a HEAD answer keeps `content-length`, which
/// describes the body a GET would get.
pub fn strip_response(headers: &mut HeaderMap, switching: bool, head: bool) {
    strip_fc(headers);
    if !switching {
        headers.remove(header::CONNECTION);
    }
    if !head {
        headers.remove(header::CONTENT_LENGTH);
    }
    headers.remove(header::DATE);
    headers.remove(header::SERVER);
    headers.remove(HeaderName::from_static("keep-alive"));
    headers.remove(header::TRANSFER_ENCODING);
}

fn strip_fc(headers: &mut HeaderMap) {
    let fc: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("x-fc-"))
        .cloned()
        .collect();
    for name in fc {
        headers.remove(name);
    }
}

/// A function's answer whose headers pass 8 KB is FC's 502 BadResponse.
pub fn check_response(headers: &HeaderMap) -> Result<(), FcError> {
    let total = size(headers);
    if total > RESPONSE_HEADERS_MAX {
        return Err(FcError::new(
            fcx_protocol::ErrorCode::BadResponse,
            format!(
                "the function answered with {total} bytes of headers, more than the \
                 {RESPONSE_HEADERS_MAX} bytes FC passes on"
            ),
        )
        .with_detail("Limit", RESPONSE_HEADERS_MAX));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (n.parse::<HeaderName>().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn reserved_headers_are_stripped_both_ways() {
        let mut h = map(&[
            ("x-fc-invocation-type", "Sync"),
            ("x-fc-anything", "1"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
            ("x-custom", "kept"),
        ]);
        strip_request(&mut h, false);
        // Removal reorders a HeaderMap: compare as sets.
        let mut names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "x-custom"]);
        let mut r = map(&[
            ("x-fc-status", "200"),
            ("server", "evil"),
            ("date", "Thu, 01 Jan 1970 00:00:00 GMT"),
            ("content-length", "5"),
            ("connection", "close"),
            ("set-cookie", "a=b"),
        ]);
        strip_response(&mut r, false, false);
        assert_eq!(
            r.keys().map(|n| n.as_str()).collect::<Vec<_>>(),
            ["set-cookie"]
        );
        let mut up = map(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        strip_request(&mut up, true);
        assert_eq!(up.len(), 2);
    }

    #[test]
    fn limits_name_the_limit() {
        let long = format!("/{}", "a".repeat(PATH_AND_QUERY_MAX));
        let e = check_request(&long.parse().unwrap(), &HeaderMap::new()).unwrap_err();
        assert!(e.message.contains("more than the 4096 bytes"), "{e}");
        let big = map(&[("x-big", &"v".repeat(REQUEST_HEADERS_MAX))]);
        let e = check_request(&"/".parse().unwrap(), &big).unwrap_err();
        assert!(e.message.contains("more than the 8192 bytes"), "{e}");
        assert!(check_response(&big).is_err());
    }
}
