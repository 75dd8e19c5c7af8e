//! JWT auth on the HTTP side: find the token where the trigger's `tokenLookup` says (a
//! header with an optional prefix, a cookie, a query parameter), have the control plane
//! check it against the JWKS, and pass the claims `claimPassBy` names on to the function as
//! headers, query parameters or cookies.

use fcx_control::web::{JwtAuth, Position};
use fcx_protocol::{ErrorCode, FcError};
use http::{HeaderName, HeaderValue, Uri};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

/// Checks the request's token and adds the claims to pass on; refuses with 401. `base` is
/// the path form's prefix: white- and blacklists name the function's own paths.
pub fn authorize(
    jwt: &JwtAuth,
    parts: &mut http::request::Parts,
    base: Option<&str>,
) -> Result<(), FcError> {
    let path = parts.uri.path();
    let path = base.and_then(|b| path.strip_prefix(b)).unwrap_or(path);
    if !jwt
        .config
        .protects(if path.is_empty() { "/" } else { path })
    {
        return Ok(());
    }
    let token = find_token(jwt, parts).ok_or_else(|| {
        let places: Vec<String> = jwt
            .config
            .token_lookup
            .iter()
            .map(|s| format!("{:?} {}", s.position, s.name).to_lowercase())
            .collect();
        unauthorized(format!(
            "a JWT is required: none found in {}",
            places.join(", ")
        ))
    })?;
    let claims = jwt
        .verify(&token)
        .map_err(|e| unauthorized(e.to_string()))?;
    for pass in &jwt.config.claim_pass_by {
        let Some(value) = claims.get(&pass.claim) else {
            continue;
        };
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match pass.position {
            Position::Header => {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(pass.parameter.as_bytes()),
                    HeaderValue::from_str(&text),
                ) {
                    parts.headers.insert(n, v);
                }
            }
            Position::Query => add_query(&mut parts.uri, &pass.parameter, &text),
            Position::Cookie => {
                let cookie = format!("{}={}", pass.parameter, text);
                let joined = match parts
                    .headers
                    .get(http::header::COOKIE)
                    .and_then(|c| c.to_str().ok())
                {
                    Some(old) => format!("{old}; {cookie}"),
                    None => cookie,
                };
                if let Ok(v) = HeaderValue::from_str(&joined) {
                    parts.headers.insert(http::header::COOKIE, v);
                }
            }
        }
    }
    Ok(())
}

fn unauthorized(message: String) -> FcError {
    FcError::new(ErrorCode::Unauthorized, message)
}

fn find_token(jwt: &JwtAuth, parts: &http::request::Parts) -> Option<String> {
    jwt.config
        .token_lookup
        .iter()
        .find_map(|source| match source.position {
            Position::Header => {
                let value = parts
                    .headers
                    .get(source.name.as_str())?
                    .to_str()
                    .ok()?
                    .trim();
                let value = match &source.prefix {
                    Some(prefix) => value.strip_prefix(prefix.as_str())?.trim_start(),
                    None => value,
                };
                (!value.is_empty()).then(|| value.to_owned())
            }
            Position::Cookie => parts
                .headers
                .get_all(http::header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(name, _)| *name == source.name)
                .map(|(_, value)| value.to_owned()),
            Position::Query => form_urlencoded::parse(parts.uri.query()?.as_bytes())
                .find(|(name, _)| name == source.name.as_str())
                .map(|(_, value)| value.into_owned()),
        })
}

/// `uri` with `name=value` appended to its query.
fn add_query(uri: &mut Uri, name: &str, value: &str) {
    let pair = format!(
        "{}={}",
        utf8_percent_encode(name, NON_ALPHANUMERIC),
        utf8_percent_encode(value, NON_ALPHANUMERIC)
    );
    let target = match uri.query() {
        Some(q) if !q.is_empty() => format!("{}?{q}&{pair}", uri.path()),
        _ => format!("{}?{pair}", uri.path()),
    };
    if let Ok(u) = target.parse() {
        *uri = u;
    }
}
