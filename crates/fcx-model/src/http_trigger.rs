//! An HTTP trigger's `triggerConfig` (FC 3.0 `HTTPTriggerConfig`): `authType`, `methods`,
//! `disableURLInternet`, `authConfig` (JWT), `corsConfig` (stored, not applied), parsed with
//! field-precise errors. The same JWT document is a custom domain's `authConfig.authInfo`.
//!
//! `authConfig` is FC's API form (a JSON document, or a string holding one): `jwks` with its
//! `keys`, `tokenLookup` as `"header:Authorization:Bearer ,cookie:token,query:jwt"` and
//! `claimPassBy` as `"header:uid:x-uid,query:name:name"` (position, claim, parameter). The
//! list forms Serverless Devs writes in `s.yaml` (`readPosition`/`parameterName`/`prefix`,
//! `claimName`/`mappingParameterName`/`mappingParameterPosition`) are read too. Keys are
//! matched without regard to case (FC's own examples write `JWKS`, `TokenLookup`).

use serde_json::{Map, Value};

use crate::ModelError;

/// Methods an HTTP trigger may accept (FC's list).
pub const HTTP_METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

/// How trigger requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// No authentication.
    Anonymous,
    /// The same `ACS3-HMAC-SHA256` signature as the API.
    Function,
    /// A JWT checked against the trigger's JWKS.
    Jwt,
}

impl AuthType {
    /// Parses FC's `authType` value; `field` names it in the error.
    pub fn parse(field: &str, s: &str) -> Result<AuthType, ModelError> {
        match s {
            "anonymous" => Ok(AuthType::Anonymous),
            "function" => Ok(AuthType::Function),
            "jwt" => Ok(AuthType::Jwt),
            other => Err(ModelError::new(
                field,
                format!("'{other}' is not one of anonymous, function, jwt"),
            )),
        }
    }

    /// FC's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Anonymous => "anonymous",
            AuthType::Function => "function",
            AuthType::Jwt => "jwt",
        }
    }
}

/// An HTTP trigger's configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpTriggerConfig {
    /// How calls are authenticated.
    pub auth_type: AuthType,
    /// Uppercase method names, FC's order of appearance (default: all of [`HTTP_METHODS`]).
    pub methods: Vec<String>,
    /// The host-based URL answers 403; the path form and custom domains still work.
    pub disable_url_internet: bool,
    /// Set when `auth_type` is [`AuthType::Jwt`].
    pub jwt: Option<JwtConfig>,
}

/// Where a request carries its token, or where a claim is passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// A request header.
    Header,
    /// A cookie.
    Cookie,
    /// A query parameter.
    Query,
}

impl Position {
    fn parse(field: &str, s: &str) -> Result<Position, ModelError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "header" => Ok(Position::Header),
            "cookie" => Ok(Position::Cookie),
            "query" => Ok(Position::Query),
            "form" => Err(ModelError::new(
                field,
                "position 'form' is not supported by fcx (it would buffer every body); use \
                 header, cookie or query",
            )),
            other => Err(ModelError::new(
                field,
                format!("position '{other}' is not one of header, cookie, query"),
            )),
        }
    }
}

/// One place a token is looked for: `position:name[:prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSource {
    /// Where the token is.
    pub position: Position,
    /// The header, cookie or parameter name.
    pub name: String,
    /// Removed from the value before the token is read (headers only), e.g. `Bearer`.
    pub prefix: Option<String>,
}

/// One claim passed to the function: `position:claim:parameter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPass {
    /// Where the claim is passed.
    pub position: Position,
    /// The claim's name in the token.
    pub claim: String,
    /// The header, cookie or parameter name the function sees.
    pub parameter: String,
}

/// JWT authentication: the public keys, where the token is, which claims go on, and which
/// paths need no token (`whitelist`) or only those that need one (`blacklist`).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtConfig {
    /// The JWKS document (`{"keys": [...]}`), checked by the control plane.
    pub jwks: Value,
    /// Where tokens are looked for, in order.
    pub token_lookup: Vec<TokenSource>,
    /// Claims passed to the function.
    pub claim_pass_by: Vec<ClaimPass>,
    /// Paths that need no token.
    pub whitelist: Vec<String>,
    /// When set, only these paths need a token.
    pub blacklist: Vec<String>,
}

impl JwtConfig {
    /// Whether a request for `path` must carry a valid token (FC: exact paths, or a prefix
    /// ending in `/*`).
    pub fn protects(&self, path: &str) -> bool {
        let listed = |list: &[String]| list.iter().any(|p| path_matches(p, path));
        if !self.whitelist.is_empty() {
            !listed(&self.whitelist)
        } else if !self.blacklist.is_empty() {
            listed(&self.blacklist)
        } else {
            true
        }
    }
}

/// FC's path patterns: `/a` matches only `/a`; `/a/*` matches `/a/` and everything under it.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

/// The value of `key` in `obj`, matched without regard to case.
fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// `value` as an object, or a string holding one.
fn object(field: &str, value: &Value) -> Result<Map<String, Value>, ModelError> {
    match value {
        Value::Object(o) => Ok(o.clone()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(o)) => Ok(o),
            Ok(_) => Err(ModelError::new(field, "must be a JSON object")),
            Err(e) => Err(ModelError::new(
                field,
                format!("must be a JSON object (or a string holding one): {e}"),
            )),
        },
        _ => Err(ModelError::new(field, "must be a JSON object")),
    }
}

fn string_list(field: &str, value: Option<&Value>) -> Result<Vec<String>, ModelError> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ModelError::new(format!("{field}[{i}]"), "must be a string"))
            })
            .collect(),
        Some(_) => Err(ModelError::new(field, "must be a list of strings")),
    }
}

/// Parses an HTTP trigger's `triggerConfig` (the JSON text of the API field).
pub fn parse_http_trigger_config(text: &str) -> Result<HttpTriggerConfig, ModelError> {
    const F: &str = "triggerConfig";
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| ModelError::new(F, format!("must be a JSON document in a string: {e}")))?;
    let obj = object(F, &doc)?;
    for key in obj.keys() {
        let known = [
            "authType",
            "methods",
            "disableURLInternet",
            "authConfig",
            "corsConfig",
        ];
        if !known.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(ModelError::new(
                format!("{F}.{key}"),
                format!(
                    "is not a field of an HTTP trigger (FC has {})",
                    known.join(", ")
                ),
            ));
        }
    }
    let auth_type = match get(&obj, "authType") {
        None | Some(Value::Null) => AuthType::Function,
        Some(Value::String(s)) => AuthType::parse(&format!("{F}.authType"), s)?,
        Some(_) => return Err(ModelError::new(format!("{F}.authType"), "must be a string")),
    };
    let methods = match get(&obj, "methods") {
        None | Some(Value::Null) => HTTP_METHODS.iter().map(|m| m.to_string()).collect(),
        Some(v) => {
            let list = string_list(&format!("{F}.methods"), Some(v))?;
            let mut methods = Vec::new();
            for (i, m) in list.iter().enumerate() {
                let upper = m.to_ascii_uppercase();
                if !HTTP_METHODS.contains(&upper.as_str()) {
                    return Err(ModelError::new(
                        format!("{F}.methods[{i}]"),
                        format!("'{m}' is not one of {}", HTTP_METHODS.join(", ")),
                    ));
                }
                if !methods.contains(&upper) {
                    methods.push(upper);
                }
            }
            if methods.is_empty() {
                return Err(ModelError::new(
                    format!("{F}.methods"),
                    "must name at least one method",
                ));
            }
            methods
        }
    };
    let disable_url_internet = match get(&obj, "disableURLInternet") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ModelError::new(
                format!("{F}.disableURLInternet"),
                "must be true or false",
            ))
        }
    };
    let jwt = match (auth_type, get(&obj, "authConfig")) {
        (AuthType::Jwt, None | Some(Value::Null)) => {
            return Err(ModelError::new(
                format!("{F}.authConfig"),
                "is required when authType is jwt",
            ))
        }
        (AuthType::Jwt, Some(v)) => Some(parse_jwt_config(&format!("{F}.authConfig"), v)?),
        _ => None,
    };
    Ok(HttpTriggerConfig {
        auth_type,
        methods,
        disable_url_internet,
        jwt,
    })
}

/// Parses a JWT `authConfig` (an object, or a string holding one) found at `field`.
pub fn parse_jwt_config(field: &str, value: &Value) -> Result<JwtConfig, ModelError> {
    let obj = object(field, value)?;
    let jwks = get(&obj, "jwks")
        .filter(|v| !v.is_null())
        .ok_or_else(|| ModelError::new(format!("{field}.jwks"), "is required"))?;
    let jwks = Value::Object(object(&format!("{field}.jwks"), jwks)?);
    let keys = jwks.get("keys").and_then(Value::as_array);
    if keys.map_or(true, |k| k.is_empty()) {
        return Err(ModelError::new(
            format!("{field}.jwks.keys"),
            "must list at least one public key",
        ));
    }
    let token_lookup = token_lookup(&format!("{field}.tokenLookup"), get(&obj, "tokenLookup"))?;
    let claim_pass_by = claim_pass_by(&format!("{field}.claimPassBy"), get(&obj, "claimPassBy"))?;
    let whitelist = string_list(&format!("{field}.whitelist"), get(&obj, "whitelist"))?;
    let blacklist = string_list(&format!("{field}.blacklist"), get(&obj, "blacklist"))?;
    if !whitelist.is_empty() && !blacklist.is_empty() {
        return Err(ModelError::new(
            format!("{field}.whitelist"),
            "cannot be set together with blacklist",
        ));
    }
    Ok(JwtConfig {
        jwks,
        token_lookup,
        claim_pass_by,
        whitelist,
        blacklist,
    })
}

/// `"header:Authorization:Bearer,cookie:token"` or Serverless Devs' list; default: the
/// `Authorization` header with a `Bearer` prefix.
fn token_lookup(field: &str, value: Option<&Value>) -> Result<Vec<TokenSource>, ModelError> {
    let entries: Vec<(Position, String, Option<String>)> = match value {
        None | Some(Value::Null) => vec![(
            Position::Header,
            "Authorization".into(),
            Some("Bearer".into()),
        )],
        Some(Value::String(s)) => s
            .split(',')
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                let mut parts = e.trim().splitn(3, ':');
                let position = Position::parse(field, parts.next().unwrap_or(""))?;
                let name = parts.next().unwrap_or("").trim().to_owned();
                let prefix = parts.next().map(|p| p.trim().to_owned());
                Ok((position, name, prefix))
            })
            .collect::<Result<_, ModelError>>()?,
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let f = format!("{field}[{i}]");
                let o = object(&f, item)?;
                let text = |k: &str| get(&o, k).and_then(Value::as_str).unwrap_or("").to_owned();
                let position =
                    Position::parse(&format!("{f}.readPosition"), &text("readPosition"))?;
                let prefix = Some(text("prefix").trim().to_owned()).filter(|p| !p.is_empty());
                Ok((position, text("parameterName"), prefix))
            })
            .collect::<Result<_, ModelError>>()?,
        Some(_) => {
            return Err(ModelError::new(
                field,
                "must be a string such as \"header:Authorization:Bearer\" or a list",
            ))
        }
    };
    if entries.is_empty() {
        return Err(ModelError::new(field, "must name at least one place"));
    }
    entries
        .into_iter()
        .map(|(position, name, prefix)| {
            if name.is_empty() {
                return Err(ModelError::new(field, "every entry needs a parameter name"));
            }
            let prefix = prefix.filter(|p| !p.is_empty() && position == Position::Header);
            Ok(TokenSource {
                position,
                name,
                prefix,
            })
        })
        .collect()
}

/// `"header:uid:x-uid,query:name:name"` or Serverless Devs' list; entries without a claim or
/// parameter name (Serverless Devs writes `query::` for none) are left out.
fn claim_pass_by(field: &str, value: Option<&Value>) -> Result<Vec<ClaimPass>, ModelError> {
    let entries: Vec<(String, String, String)> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s
            .split(',')
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                let mut parts = e.trim().splitn(3, ':').map(|p| p.trim().to_owned());
                let position = parts.next().unwrap_or_default();
                let claim = parts.next().unwrap_or_default();
                let parameter = parts.next().unwrap_or_default();
                (position, claim, parameter)
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let o = object(&format!("{field}[{i}]"), item)?;
                let text = |k: &str| get(&o, k).and_then(Value::as_str).unwrap_or("").to_owned();
                let parameter = text("mappingParameterName");
                let claim = Some(text("claimName"))
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| parameter.clone());
                Ok((text("mappingParameterPosition"), claim, parameter))
            })
            .collect::<Result<_, ModelError>>()?,
        Some(_) => {
            return Err(ModelError::new(
                field,
                "must be a string such as \"header:uid:x-uid\" or a list",
            ))
        }
    };
    entries
        .into_iter()
        .filter(|(_, claim, parameter)| !claim.is_empty() && !parameter.is_empty())
        .map(|(position, claim, parameter)| {
            Ok(ClaimPass {
                position: Position::parse(field, &position)?,
                claim,
                parameter,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks() -> Value {
        serde_json::json!({"keys": [{"kty": "RSA", "n": "x", "e": "AQAB", "alg": "RS256"}]})
    }

    #[test]
    fn defaults_are_function_auth_and_every_method() {
        let c = parse_http_trigger_config("{}").unwrap();
        assert_eq!(c.auth_type, AuthType::Function);
        assert_eq!(c.methods.len(), HTTP_METHODS.len());
        assert!(!c.disable_url_internet);
        let c =
            parse_http_trigger_config(r#"{"authType":"anonymous","methods":["get","POST","GET"]}"#)
                .unwrap();
        assert_eq!(c.methods, ["GET", "POST"]);
    }

    #[test]
    fn errors_name_the_field() {
        let field = |text: &str| parse_http_trigger_config(text).unwrap_err().field;
        assert_eq!(field(r#"{"authType":"magic"}"#), "triggerConfig.authType");
        assert_eq!(
            field(r#"{"methods":["GET","BREW"]}"#),
            "triggerConfig.methods[1]"
        );
        assert_eq!(field(r#"{"methods":[]}"#), "triggerConfig.methods");
        assert_eq!(field(r#"{"authType":"jwt"}"#), "triggerConfig.authConfig");
        assert_eq!(field(r#"{"cors":1}"#), "triggerConfig.cors");
        let no_keys = r#"{"authType":"jwt","authConfig":{"jwks":{"keys":[]}}}"#;
        assert_eq!(field(no_keys), "triggerConfig.authConfig.jwks.keys");
    }

    #[test]
    fn jwt_config_reads_fc_strings_and_serverless_devs_lists() {
        let fc = serde_json::json!({
            "JWKS": jwks(),
            "TokenLookup": "header:Authorization:Bearer ,cookie:tok,query:jwt",
            "ClaimPassBy": "header:uid:x-uid,query:name:user,query::",
            "whitelist": ["/public/*"],
        });
        let c = parse_jwt_config("authConfig", &Value::String(fc.to_string())).unwrap();
        assert_eq!(c.token_lookup.len(), 3);
        assert_eq!(c.token_lookup[0].prefix.as_deref(), Some("Bearer"));
        assert_eq!(c.token_lookup[1].prefix, None);
        assert_eq!(
            c.claim_pass_by,
            [
                ClaimPass {
                    position: Position::Header,
                    claim: "uid".into(),
                    parameter: "x-uid".into()
                },
                ClaimPass {
                    position: Position::Query,
                    claim: "name".into(),
                    parameter: "user".into()
                },
            ]
        );
        assert!(!c.protects("/public/a"));
        assert!(c.protects("/private"));
        let s = serde_json::json!({
            "jwks": jwks(),
            "tokenLookup": [{"readPosition": "header", "parameterName": "auth", "prefix": "Bearer "}],
            "claimPassBy": [{"claimName": "sub", "mappingParameterName": "x-sub",
                             "mappingParameterPosition": "header"}],
            "blacklist": ["/admin"],
        });
        let c = parse_jwt_config("authConfig", &s).unwrap();
        assert_eq!(c.token_lookup[0].name, "auth");
        assert_eq!(c.claim_pass_by[0].parameter, "x-sub");
        assert!(c.protects("/admin") && !c.protects("/admin/x"));
        let form = serde_json::json!({"jwks": jwks(), "tokenLookup": "form:tok"});
        assert!(parse_jwt_config("a", &form)
            .unwrap_err()
            .message
            .contains("'form' is not supported"));
    }

    #[test]
    fn path_patterns_follow_fc() {
        assert!(path_matches("/a", "/a"));
        assert!(!path_matches("/a", "/a/"));
        assert!(path_matches("/login/*", "/login/"));
        assert!(path_matches("/login/*", "/login/b/c"));
        assert!(!path_matches("/login/*", "/login"));
        assert!(path_matches("/*", "/"));
    }
}
