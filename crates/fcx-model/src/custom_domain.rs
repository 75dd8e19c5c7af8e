//! Custom domains (FC 3.0 `/2023-03-30/custom-domains`): the Create/Update bodies, the
//! stored record GetCustomDomain returns (the certificate's private key is kept apart and
//! never part of it), and FC's route matching: exact paths first, then the longest `/*`
//! prefix.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http_trigger::{path_matches, HTTP_METHODS};
use crate::ModelError;

/// Longest domain name (DNS).
const DOMAIN_MAX: usize = 253;
/// Most routes one domain may have.
pub const ROUTES_MAX: usize = 100;

/// CreateCustomDomain body (UpdateCustomDomain: the same without `domainName`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomDomainInput {
    #[serde(default)]
    /// The domain name (CreateCustomDomain only).
    pub domain_name: Option<String>,
    #[serde(default)]
    /// `HTTP`, `HTTPS` or `HTTP,HTTPS`.
    pub protocol: Option<String>,
    #[serde(default)]
    /// The certificate for HTTPS.
    pub cert_config: Option<CertConfigInput>,
    #[serde(default)]
    /// The routes to functions.
    pub route_config: Option<RouteConfig>,
    #[serde(default)]
    /// How calls through the domain are authenticated.
    pub auth_config: Option<DomainAuthConfig>,
    /// Stored and returned; fcx's TLS settings are rustls' defaults.
    #[serde(default)]
    pub tls_config: Option<Value>,
    /// Stored and returned; fcx has no WAF.
    #[serde(default)]
    pub waf_config: Option<Value>,
    /// Stored and returned, not applied.
    #[serde(default)]
    pub cors_config: Option<Value>,
    /// FC's E2B flag, stored and returned.
    #[serde(default, rename = "isE2B")]
    pub is_e2b: Option<bool>,
}

/// `certConfig` as given: the PEM certificate chain and its private key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertConfigInput {
    #[serde(default)]
    /// The certificate's name.
    pub cert_name: Option<String>,
    #[serde(default)]
    /// The PEM certificate chain.
    pub certificate: Option<String>,
    #[serde(default)]
    /// The PEM private key (sealed at rest, never answered).
    pub private_key: Option<String>,
}

/// `certConfig` as answered: never the private key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertConfig {
    /// The certificate's name.
    pub cert_name: String,
    /// The PEM certificate chain.
    pub certificate: String,
}

/// `routeConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfig {
    #[serde(default)]
    /// The routes, matched by FC's rules.
    pub routes: Vec<Route>,
}

/// One route: requests whose path matches go to `functionName` (at `qualifier`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// The path: exact, or a prefix ending in `/*`.
    pub path: String,
    /// The function requests go to.
    pub function_name: String,
    #[serde(default = "latest")]
    /// The version or alias (`LATEST` by default).
    pub qualifier: String,
    /// Methods this route takes (empty: every method).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Stored and returned, not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_config: Option<Value>,
}

fn latest() -> String {
    "LATEST".into()
}

/// `authConfig` of a custom domain: `authType` and, for `jwt`, `authInfo` (the JWT
/// document of an HTTP trigger's `authConfig`, as a string).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainAuthConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// `anonymous`, `function` or `jwt`.
    pub auth_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// For `jwt`: the JWT settings as a JSON string.
    pub auth_info: Option<String>,
}

/// A stored custom domain, as GetCustomDomain answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomDomain {
    /// The domain name.
    pub domain_name: String,
    /// The account (fcx's fixed account id).
    pub account_id: String,
    /// FC's API version of the record.
    pub api_version: String,
    /// `HTTP`, `HTTPS` or `HTTP,HTTPS`.
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The certificate (without its private key).
    pub cert_config: Option<CertConfig>,
    /// The routes.
    pub route_config: RouteConfig,
    /// Authentication of calls.
    pub auth_config: DomainAuthConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Stored and returned; fcx's TLS settings are rustls' defaults.
    pub tls_config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Stored and returned; fcx has no WAF.
    pub waf_config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Stored and returned, not applied.
    pub cors_config: Option<Value>,
    #[serde(default, rename = "isE2B", skip_serializing_if = "Option::is_none")]
    /// FC's E2B flag, stored and returned.
    pub is_e2b: Option<bool>,
    /// Subdomains served (FC's string form).
    pub subdomain_count: String,
    /// When it was created (FC's time format).
    pub created_time: String,
    /// When it was last changed (FC's time format).
    pub last_modified_time: String,
}

impl CustomDomain {
    /// Whether the domain is served on the HTTP listener.
    pub fn serves_http(&self) -> bool {
        self.protocol.split(',').any(|p| p.trim() == "HTTP")
    }

    /// Whether the domain is served on the HTTPS listener.
    pub fn serves_https(&self) -> bool {
        self.protocol.split(',').any(|p| p.trim() == "HTTPS")
    }
}

/// Parses a CreateCustomDomain (`create`) or UpdateCustomDomain body and checks FC's rules
/// that need no other state (names, protocol, routes, auth type).
pub fn parse_custom_domain(body: &[u8], create: bool) -> Result<CustomDomainInput, ModelError> {
    let input: CustomDomainInput = crate::parse_body(body)?;
    if create {
        let name = input
            .domain_name
            .as_deref()
            .ok_or_else(|| ModelError::new("domainName", "is required"))?;
        validate_domain_name(name)?;
    } else if input.domain_name.is_some() {
        return Err(ModelError::new(
            "domainName",
            "cannot be changed; create another custom domain",
        ));
    }
    if let Some(p) = &input.protocol {
        normalize_protocol(p)?;
    }
    if let Some(routes) = &input.route_config {
        validate_routes(&routes.routes)?;
    }
    if let Some(auth) = &input.auth_config {
        let kind = auth.auth_type.as_deref().unwrap_or("anonymous");
        let kind = crate::http_trigger::AuthType::parse("authConfig.authType", kind)?;
        if kind == crate::http_trigger::AuthType::Jwt {
            let info = auth.auth_info.as_deref().ok_or_else(|| {
                ModelError::new("authConfig.authInfo", "is required when authType is jwt")
            })?;
            crate::http_trigger::parse_jwt_config(
                "authConfig.authInfo",
                &Value::String(info.to_owned()),
            )?;
        }
    }
    if let Some(cert) = &input.cert_config {
        for (field, given) in [
            ("certConfig.certificate", &cert.certificate),
            ("certConfig.privateKey", &cert.private_key),
        ] {
            if given.as_deref().map_or(true, |s| s.trim().is_empty()) {
                return Err(ModelError::new(field, "is required (PEM text)"));
            }
        }
    }
    Ok(input)
}

/// `HTTP`, `HTTPS` or `HTTP,HTTPS` (any order and case), written back in FC's spelling.
pub fn normalize_protocol(p: &str) -> Result<String, ModelError> {
    let mut http = false;
    let mut https = false;
    for part in p.split(',') {
        match part.trim().to_ascii_uppercase().as_str() {
            "HTTP" => http = true,
            "HTTPS" => https = true,
            other => {
                return Err(ModelError::new(
                    "protocol",
                    format!("'{other}' is not one of HTTP, HTTPS, HTTP,HTTPS"),
                ))
            }
        }
    }
    Ok(match (http, https) {
        (true, true) => "HTTP,HTTPS",
        (false, true) => "HTTPS",
        _ => "HTTP",
    }
    .into())
}

/// Lowercase DNS labels (letters, digits, `-`), dot-separated, at most 253 characters.
pub fn validate_domain_name(name: &str) -> Result<(), ModelError> {
    let bad = |m: String| Err(ModelError::new("domainName", m));
    if name.is_empty() || name.len() > DOMAIN_MAX {
        return bad(format!(
            "must be 1 to {DOMAIN_MAX} characters long, got {}",
            name.len()
        ));
    }
    if name != name.to_ascii_lowercase() {
        return bad(format!("'{name}' must be lowercase"));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return bad(format!(
                "'{name}' is not a domain name: every label is 1 to 63 letters, digits or '-' \
                 (not at either end)"
            ));
        }
    }
    Ok(())
}

fn validate_routes(routes: &[Route]) -> Result<(), ModelError> {
    if routes.len() > ROUTES_MAX {
        return Err(ModelError::new(
            "routeConfig.routes",
            format!("has {} routes, more than {ROUTES_MAX}", routes.len()),
        ));
    }
    for (i, r) in routes.iter().enumerate() {
        let field = |f: &str| format!("routeConfig.routes[{i}].{f}");
        let star = r.path.find('*');
        if !r.path.starts_with('/') || star.is_some_and(|s| s != r.path.len() - 1) {
            return Err(ModelError::new(
                field("path"),
                format!(
                    "'{}' must start with '/' and may end in '*' only (e.g. /api/*)",
                    r.path
                ),
            ));
        }
        crate::validate_function_name(&r.function_name)
            .map_err(|e| ModelError::new(field("functionName"), e.message))?;
        for (j, m) in r.methods.iter().enumerate() {
            if !HTTP_METHODS.contains(&m.to_ascii_uppercase().as_str()) {
                return Err(ModelError::new(
                    format!("routeConfig.routes[{i}].methods[{j}]"),
                    format!("'{m}' is not one of {}", HTTP_METHODS.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

/// What a request's path found among a domain's routes.
#[derive(Debug, PartialEq)]
pub enum RouteMatch<'a> {
    /// The route the request goes to.
    Found(&'a Route),
    /// Routes match the path but none takes the method; their methods, for `Allow`.
    MethodNotAllowed(Vec<String>),
    /// No route matches the path.
    NotFound,
}

/// FC's rule: the path picks the route (an exact path wins, otherwise the longest `/*`
/// prefix that matches); a route with `methods` then takes only those (case-insensitively).
pub fn match_route<'a>(routes: &'a [Route], path: &str, method: &str) -> RouteMatch<'a> {
    // Exact paths (no '*') first, then longer prefixes.
    let best = routes
        .iter()
        .filter(|r| path_matches(&r.path, path))
        .min_by_key(|r| (r.path.ends_with('*'), std::cmp::Reverse(r.path.len())));
    let Some(route) = best else {
        return RouteMatch::NotFound;
    };
    let takes =
        route.methods.is_empty() || route.methods.iter().any(|m| m.eq_ignore_ascii_case(method));
    if takes {
        return RouteMatch::Found(route);
    }
    let mut allow: Vec<String> = route
        .methods
        .iter()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    allow.sort();
    allow.dedup();
    RouteMatch::MethodNotAllowed(allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, f: &str, methods: &[&str]) -> Route {
        Route {
            path: path.into(),
            function_name: f.into(),
            qualifier: "LATEST".into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            rewrite_config: None,
        }
    }

    #[test]
    fn exact_wins_then_longest_prefix() {
        let routes = [
            route("/*", "root", &[]),
            route("/api/*", "api", &[]),
            route("/api/v1/*", "v1", &[]),
            route("/api/login", "login", &[]),
        ];
        let to = |p: &str| match match_route(&routes, p, "GET") {
            RouteMatch::Found(r) => r.function_name.clone(),
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(to("/"), "root");
        assert_eq!(to("/index.html"), "root");
        assert_eq!(to("/api/x"), "api");
        assert_eq!(to("/api/v1/users"), "v1");
        assert_eq!(to("/api/login"), "login");
        assert_eq!(to("/api"), "root");
    }

    #[test]
    fn methods_restrict_a_route() {
        let routes = [
            route("/*", "root", &[]),
            route("/w/*", "writer", &["POST", "PUT"]),
            route("/r", "r", &["GET"]),
        ];
        assert!(matches!(
            match_route(&routes, "/w/a", "post"),
            RouteMatch::Found(_)
        ));
        assert_eq!(
            match_route(&routes, "/w/a", "GET"),
            RouteMatch::MethodNotAllowed(vec!["POST".into(), "PUT".into()])
        );
        // The path picks the route: the root route does not take the writer's other methods.
        assert!(matches!(
            match_route(&routes, "/nothing", "DELETE"),
            RouteMatch::Found(r) if r.function_name == "root"
        ));
        assert_eq!(
            match_route(&routes[1..], "/nothing", "GET"),
            RouteMatch::NotFound
        );
    }

    #[test]
    fn bodies_are_checked_with_field_names() {
        let field = |b: &str, create| parse_custom_domain(b.as_bytes(), create).unwrap_err().field;
        assert_eq!(field("{}", true), "domainName");
        assert_eq!(field(r#"{"domainName":"Example.com"}"#, true), "domainName");
        assert_eq!(field(r#"{"domainName":"a..b"}"#, true), "domainName");
        assert_eq!(
            field(r#"{"domainName":"a.b","protocol":"FTP"}"#, true),
            "protocol"
        );
        assert_eq!(
            field(
                r#"{"domainName":"a.b","routeConfig":{"routes":[{"path":"api","functionName":"f"}]}}"#,
                true
            ),
            "routeConfig.routes[0].path"
        );
        assert_eq!(
            field(
                r#"{"domainName":"a.b","certConfig":{"certName":"c","certificate":"x"}}"#,
                true
            ),
            "certConfig.privateKey"
        );
        assert_eq!(field(r#"{"domainName":"a.b"}"#, false), "domainName");
        assert_eq!(normalize_protocol("https, http").unwrap(), "HTTP,HTTPS");
        let ok = parse_custom_domain(
            br#"{"domainName":"app.example.com","protocol":"HTTP","routeConfig":{"routes":[{"path":"/*","functionName":"f","methods":["GET"]}]}}"#,
            true,
        )
        .unwrap();
        assert_eq!(ok.route_config.unwrap().routes[0].qualifier, "LATEST");
    }
}
