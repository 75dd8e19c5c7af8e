//! What this node serves on the web, as the gateway asks on every HTTP-trigger and
//! custom-domain request: the HTTP triggers by function and qualifier, the custom domains by
//! name with their routes, auth and certificates. Both tables sit behind an `ArcSwap`, so a
//! request reads them without a lock; `sync` and `load` replace them (copy, change, swap)
//! from what the store holds. Also: the URLs a trigger is served at (`httpTrigger`), and the
//! HTTP entries into the scheduler and the durable queue.

mod certs;
pub mod jwt;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use fcx_model::custom_domain::CustomDomain;
use fcx_model::http_trigger::{self, AuthType, HttpTriggerConfig};
use fcx_model::triggers::{HttpTriggerUrls, Trigger};
use fcx_model::ModelError;

pub use certs::{provider as tls_provider, CertifiedKey};
pub use fcx_model::custom_domain::{match_route, RouteMatch};
pub use fcx_model::http_trigger::{JwtConfig, Position};
pub use jwt::{JwtAuth, JwtRejected};

use crate::invoke::{HttpInvokeRequest, HttpInvokeResponse};
use crate::{ControlPlane, SchedulerError};

/// How requests through a trigger or domain are authenticated.
pub enum Auth {
    /// No check (`authType: anonymous`), also under `--auth signature`.
    Anonymous,
    /// The API's `ACS3-HMAC-SHA256` signature.
    Signature,
    /// A bearer JWT checked against the JWKS of `authConfig`.
    Jwt(JwtAuth),
}

impl Auth {
    fn of(
        kind: AuthType,
        jwt: Option<http_trigger::JwtConfig>,
        field: &str,
    ) -> Result<Auth, ModelError> {
        Ok(match (kind, jwt) {
            (AuthType::Anonymous, _) => Auth::Anonymous,
            (AuthType::Function, _) => Auth::Signature,
            (AuthType::Jwt, Some(config)) => Auth::Jwt(JwtAuth::new(field, config)?),
            (AuthType::Jwt, None) => {
                return Err(ModelError::new(field, "is required when authType is jwt"))
            }
        })
    }
}

/// An HTTP trigger as served.
pub struct HttpTrigger {
    /// The function it belongs to.
    pub function: String,
    /// The version or alias it serves (`LATEST` by default).
    pub qualifier: String,
    /// The trigger's name (logged with each call).
    pub name: Arc<str>,
    /// How its calls are authenticated.
    pub auth: Auth,
    /// Uppercase methods it takes.
    pub methods: Vec<String>,
    /// `disableURLInternet`: the host-based URL answers 403.
    pub disable_url_internet: bool,
}

impl HttpTrigger {
    /// The trigger `t` of `function`, when it is an HTTP trigger whose config is sound.
    pub(crate) fn build(function: &str, t: &Trigger) -> Result<Option<HttpTrigger>, ModelError> {
        if t.trigger_type != "http" {
            return Ok(None);
        }
        let HttpTriggerConfig {
            auth_type,
            methods,
            disable_url_internet,
            jwt,
        } = http_trigger::parse_http_trigger_config(&t.trigger_config)?;
        Ok(Some(HttpTrigger {
            function: function.to_owned(),
            qualifier: t.qualifier.clone(),
            name: t.trigger_name.as_str().into(),
            auth: Auth::of(auth_type, jwt, "triggerConfig.authConfig")?,
            methods,
            disable_url_internet,
        }))
    }

    /// Whether `method` (uppercase) is one of the trigger's `methods`.
    pub fn allows(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }
}

/// A custom domain as served.
pub struct Domain {
    /// The domain as GetCustomDomain answers it.
    pub record: CustomDomain,
    /// How calls through it are authenticated.
    pub auth: Auth,
    /// Its certificate, when it serves HTTPS.
    pub cert: Option<Arc<CertifiedKey>>,
}

impl Domain {
    pub(crate) fn build(
        record: CustomDomain,
        private_key: Option<&str>,
    ) -> Result<Domain, ModelError> {
        let kind = record
            .auth_config
            .auth_type
            .as_deref()
            .unwrap_or("anonymous");
        let kind = AuthType::parse("authConfig.authType", kind)?;
        let jwt = match (&record.auth_config.auth_info, kind) {
            (Some(info), AuthType::Jwt) => Some(http_trigger::parse_jwt_config(
                "authConfig.authInfo",
                &serde_json::Value::String(info.clone()),
            )?),
            _ => None,
        };
        let auth = Auth::of(kind, jwt, "authConfig.authInfo")?;
        let cert = match (&record.cert_config, private_key) {
            (Some(c), Some(key)) => Some(Arc::new(certs::certified_key(&c.certificate, key)?)),
            _ => None,
        };
        if record.serves_https() && cert.is_none() {
            return Err(ModelError::new(
                "certConfig",
                format!("is required: protocol {} serves HTTPS", record.protocol),
            ));
        }
        Ok(Domain { record, auth, cert })
    }
}

#[derive(Default, Clone)]
struct Tables {
    /// Lowercase function name (hosts are case-insensitive) → its HTTP triggers.
    triggers: HashMap<String, Vec<Arc<HttpTrigger>>>,
    domains: HashMap<String, Arc<Domain>>,
}

/// Where the HTTP front is reachable, for the URLs triggers answer with.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Host name under which `<function>.<domain>` reaches a trigger (`--trigger-domain`).
    pub trigger_domain: String,
    /// Port of those URLs: `--trigger-domain`'s when it names one, else the listener's.
    pub port: u16,
    /// `host:port` of the listener for the path form (loopback when it listens on all).
    pub listen: String,
}

/// The web tables of one node.
#[derive(Default)]
pub(crate) struct Web {
    tables: ArcSwap<Tables>,
    /// Serializes writers (copy, change, swap).
    writing: Mutex<()>,
    endpoint: OnceLock<Endpoint>,
}

impl Web {
    fn update(&self, change: impl FnOnce(&mut Tables)) {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let mut tables = Tables::clone(&self.tables.load());
        change(&mut tables);
        self.tables.store(Arc::new(tables));
    }

    /// Serves `trigger` (an HTTP trigger) of `function` from now on, or stops serving the
    /// trigger named `name` when `trigger` is `None`.
    pub(crate) fn put_trigger(&self, function: &str, name: &str, trigger: Option<HttpTrigger>) {
        self.update(|t| {
            let key = function.to_ascii_lowercase();
            let list = t.triggers.entry(key.clone()).or_default();
            list.retain(|x| !(x.function == function && &*x.name == name));
            if let Some(trigger) = trigger {
                list.push(Arc::new(trigger));
            }
            if list.is_empty() {
                t.triggers.remove(&key);
            }
        });
    }

    pub(crate) fn forget_function(&self, function: &str) {
        self.update(|t| {
            let key = function.to_ascii_lowercase();
            if let Some(list) = t.triggers.get_mut(&key) {
                list.retain(|x| x.function != function);
                if list.is_empty() {
                    t.triggers.remove(&key);
                }
            }
        });
    }

    pub(crate) fn put_domain(&self, name: &str, domain: Option<Domain>) {
        self.update(|t| match domain {
            Some(d) => {
                t.domains.insert(name.to_owned(), Arc::new(d));
            }
            None => {
                t.domains.remove(name);
            }
        });
    }
}

/// What a request's `Host` is, as far as triggers go.
pub enum TriggerHost {
    /// `<function>[--<qualifier>].<trigger domain>` with an HTTP trigger.
    Trigger(Arc<HttpTrigger>),
    /// Under the trigger domain, but no HTTP trigger answers for this label.
    NoTrigger(String),
    /// Not a trigger host.
    Other,
}

/// `s` lowercased, without allocating when it already is.
fn lower(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        s.to_ascii_lowercase().into()
    } else {
        s.into()
    }
}

impl ControlPlane {
    /// Records where the HTTP front listens (called once it is bound).
    pub fn set_endpoint(&self, listen: std::net::SocketAddr) {
        let (domain, port) = match self.trigger_domain.rsplit_once(':') {
            Some((d, p)) if p.parse::<u16>().is_ok() => (d.to_owned(), p.parse().unwrap_or(80)),
            _ => (self.trigger_domain.clone(), listen.port()),
        };
        let host = if listen.ip().is_unspecified() {
            format!("127.0.0.1:{}", listen.port())
        } else {
            listen.to_string()
        };
        let _ = self.web.endpoint.set(Endpoint {
            trigger_domain: domain.to_ascii_lowercase(),
            port,
            listen: host,
        });
    }

    /// The URLs of an HTTP trigger on `function` at `qualifier`: the host-based form and
    /// FC 2.0's path form (which needs no DNS).
    pub fn trigger_urls(&self, function: &str, qualifier: &str) -> Option<HttpTriggerUrls> {
        let e = self.web.endpoint.get()?;
        let mut label = function.to_ascii_lowercase();
        if qualifier != "LATEST" {
            label.push_str("--");
            label.push_str(&qualifier.to_ascii_lowercase());
        }
        let port = if e.port == 80 {
            String::new()
        } else {
            format!(":{}", e.port)
        };
        let service = if qualifier == "LATEST" {
            function.to_owned()
        } else {
            format!("{function}.{qualifier}")
        };
        Some(HttpTriggerUrls {
            url_internet: format!("http://{label}.{}{port}", e.trigger_domain),
            url_intranet: format!("http://{}/2016-08-15/proxy/{service}/{function}", e.listen),
        })
    }

    /// The trigger a request for `host` (without its port) goes to.
    pub fn trigger_host(&self, host: &str) -> TriggerHost {
        let Some(e) = self.web.endpoint.get() else {
            return TriggerHost::Other;
        };
        let host = lower(host);
        let Some(label) = host
            .strip_suffix(e.trigger_domain.as_str())
            .and_then(|l| l.strip_suffix('.'))
        else {
            return TriggerHost::Other;
        };
        if label.is_empty() || label.contains('.') {
            return TriggerHost::Other;
        }
        let tables = self.web.tables.load();
        let find = |function: &str, qualifier: &str| {
            tables.triggers.get(function).and_then(|list| {
                list.iter()
                    .find(|t| t.qualifier.eq_ignore_ascii_case(qualifier))
                    .cloned()
            })
        };
        let found = find(label, "LATEST").or_else(|| {
            let (function, qualifier) = label.rsplit_once("--")?;
            find(function, qualifier)
        });
        match found {
            Some(t) => TriggerHost::Trigger(t),
            None => TriggerHost::NoTrigger(label.to_owned()),
        }
    }

    /// The HTTP trigger of `function` at `qualifier` (FC 2.0's path form).
    pub fn trigger_of(&self, function: &str, qualifier: &str) -> Option<Arc<HttpTrigger>> {
        let tables = self.web.tables.load();
        tables
            .triggers
            .get(lower(function).as_ref())?
            .iter()
            .find(|t| t.function == function && t.qualifier == qualifier)
            .cloned()
    }

    /// The custom domain `host` (without its port) names.
    pub fn custom_domain(&self, host: &str) -> Option<Arc<Domain>> {
        self.web
            .tables
            .load()
            .domains
            .get(lower(host).as_ref())
            .cloned()
    }

    /// The certificate for a TLS handshake naming `server_name` (SNI).
    pub fn certificate(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        self.custom_domain(server_name)?.cert.clone()
    }

    /// Runs one HTTP request of `version` of `function` (`None`: LATEST).
    pub async fn http_invoke(
        &self,
        function: &str,
        version: Option<&str>,
        request: HttpInvokeRequest,
    ) -> Result<HttpInvokeResponse, SchedulerError> {
        self.scheduler.http_invoke(function, version, request).await
    }
}
