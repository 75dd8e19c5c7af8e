//! Custom domains (FC 3.0): CreateCustomDomain, GetCustomDomain, ListCustomDomains,
//! UpdateCustomDomain, DeleteCustomDomain. A domain's certificate is checked against its key
//! before anything is stored; the key is stored sealed and never answered.

use fcx_model::custom_domain::{
    self, CertConfig, CustomDomain, CustomDomainInput, DomainAuthConfig,
};
use fcx_store::{StoreError, StoredDomain};
use serde::{Deserialize, Serialize};

use crate::error::{decode, encode};
use crate::sync::Change;
use crate::time::now_rfc3339;
use crate::web::Domain;
use crate::{params, BodyCommand, Command, ControlError, ControlPlane, OffWorker};

const LIST_LIMIT_MAX: usize = 100;

impl ControlPlane {
    fn stored_domain(&self, name: &str) -> Result<(CustomDomain, Option<String>), ControlError> {
        let stored = self
            .store
            .get_custom_domain(name)?
            .ok_or_else(|| ControlError::DomainNotFound(name.to_owned()))?;
        let record = decode(|| format!("custom domain '{name}'"), &stored.doc)?;
        Ok((record, stored.private_key))
    }

    /// Checks `record` as served (certificate and key, auth), stores it, and serves it.
    fn save_domain(
        &self,
        record: &CustomDomain,
        private_key: Option<String>,
        create: bool,
    ) -> Result<(), ControlError> {
        let key_for_check = match &private_key {
            Some(k) => Some(k.clone()),
            None if record.cert_config.is_some() => self.stored_domain(&record.domain_name)?.1,
            None => None,
        };
        Domain::build(record.clone(), key_for_check.as_deref())?;
        let stored = StoredDomain {
            name: record.domain_name.clone(),
            doc: encode("custom domain", record)?,
            private_key,
        };
        let written = if create {
            self.store.create_custom_domain(&stored)
        } else {
            self.store.update_custom_domain(&stored)
        };
        match written {
            Err(StoreError::AlreadyExists(n)) => return Err(ControlError::DomainExists(n)),
            Err(StoreError::NotFound(n)) => return Err(ControlError::DomainNotFound(n)),
            other => other?,
        }
        self.apply(Change::Domain(record.domain_name.clone()))
    }
}

/// Applies an input's fields to a record; returns the private key given, if any.
fn merge(
    record: &mut CustomDomain,
    input: CustomDomainInput,
) -> Result<Option<String>, ControlError> {
    if let Some(p) = input.protocol {
        record.protocol = custom_domain::normalize_protocol(&p)?;
    }
    if let Some(r) = input.route_config {
        record.route_config = r;
    }
    if let Some(a) = input.auth_config {
        record.auth_config = a;
    }
    crate::given(&mut record.tls_config, input.tls_config.map(Some));
    crate::given(&mut record.waf_config, input.waf_config.map(Some));
    crate::given(&mut record.cors_config, input.cors_config.map(Some));
    crate::given(&mut record.is_e2b, input.is_e2b.map(Some));
    let mut key = None;
    if let Some(cert) = input.cert_config {
        record.cert_config = Some(CertConfig {
            cert_name: cert.cert_name.unwrap_or_default(),
            certificate: cert.certificate.unwrap_or_default(),
        });
        key = cert.private_key;
    }
    record.last_modified_time = now_rfc3339();
    Ok(key)
}

/// CreateCustomDomain; the body is a `CreateCustomDomainInput`.
#[derive(Debug, Deserialize)]
pub struct CreateCustomDomain {}

impl BodyCommand for CreateCustomDomain {
    type Output = CustomDomain;

    fn run(
        self,
        cp: &ControlPlane,
        body: &[u8],
        _: OffWorker,
    ) -> Result<CustomDomain, ControlError> {
        let mut input = custom_domain::parse_custom_domain(body, true)?;
        let name = input.domain_name.take().unwrap_or_default();
        let now = now_rfc3339();
        let mut record = CustomDomain {
            domain_name: name,
            account_id: cp.account_id.clone(),
            api_version: "2023-03-30".into(),
            protocol: "HTTP".into(),
            cert_config: None,
            route_config: Default::default(),
            auth_config: DomainAuthConfig {
                auth_type: Some("anonymous".into()),
                auth_info: None,
            },
            tls_config: None,
            waf_config: None,
            cors_config: None,
            is_e2b: None,
            subdomain_count: "1".into(),
            created_time: now.clone(),
            last_modified_time: now,
        };
        let key = merge(&mut record, input)?;
        cp.save_domain(&record, key, true)?;
        Ok(record)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
/// GetCustomDomain.
pub struct GetCustomDomain {
    /// The domain's name (path parameter).
    pub domain_name: String,
}

impl Command for GetCustomDomain {
    type Output = CustomDomain;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<CustomDomain, ControlError> {
        Ok(cp.stored_domain(&self.domain_name)?.0)
    }
}

/// UpdateCustomDomain; the body is an `UpdateCustomDomainInput`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateCustomDomain {
    /// The domain's name (path parameter).
    pub domain_name: String,
}

impl BodyCommand for UpdateCustomDomain {
    type Output = CustomDomain;

    fn run(
        self,
        cp: &ControlPlane,
        body: &[u8],
        _: OffWorker,
    ) -> Result<CustomDomain, ControlError> {
        let (mut record, _) = cp.stored_domain(&self.domain_name)?;
        let input = custom_domain::parse_custom_domain(body, false)?;
        let key = merge(&mut record, input)?;
        cp.save_domain(&record, key, false)?;
        Ok(record)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
/// DeleteCustomDomain.
pub struct DeleteCustomDomain {
    /// The domain's name (path parameter).
    pub domain_name: String,
}

impl Command for DeleteCustomDomain {
    type Output = ();

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<(), ControlError> {
        if !cp.store.delete_custom_domain(&self.domain_name)? {
            return Err(ControlError::DomainNotFound(self.domain_name));
        }
        cp.apply(Change::Domain(self.domain_name))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
/// ListCustomDomains.
pub struct ListCustomDomains {
    /// Page size (FC's `limit`, checked like other list commands).
    pub limit: Option<String>,
    /// Only names starting with this.
    pub prefix: Option<String>,
    /// The token a previous page returned.
    pub next_token: Option<String>,
}

/// One page of ListCustomDomains, in name order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainPage {
    /// The domains of this page.
    pub custom_domains: Vec<CustomDomain>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Set when more domains follow.
    pub next_token: Option<String>,
}

impl Command for ListCustomDomains {
    type Output = DomainPage;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<DomainPage, ControlError> {
        let limit = params::count("limit", self.limit.as_deref(), 20, LIST_LIMIT_MAX)?;
        let after = params::token(&self.next_token);
        let rows = cp
            .store
            .list_custom_domains(self.prefix.as_deref(), after, limit + 1)?;
        let mut domains: Vec<CustomDomain> = rows
            .iter()
            .filter_map(|d| serde_json::from_str(&d.doc).ok())
            .collect();
        let more = domains.len() > limit;
        domains.truncate(limit);
        let next_token = more
            .then(|| domains.last().map(|d| d.domain_name.clone()))
            .flatten();
        Ok(DomainPage {
            custom_domains: domains,
            next_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::Fixture;

    #[test]
    fn a_domain_is_stored_listed_served_and_removed() {
        let fx = Fixture::new();
        let body = json!({
            "domainName": "app.example.com",
            "routeConfig": {"routes": [{"path": "/*", "functionName": "f"}]},
        });
        let d = fx.run_body(CreateCustomDomain {}, body.clone()).unwrap();
        assert_eq!(
            (d.protocol.as_str(), d.api_version.as_str()),
            ("HTTP", "2023-03-30")
        );
        assert!(fx.cp.custom_domain("APP.example.com").is_some());
        assert!(matches!(
            fx.run_body(CreateCustomDomain {}, body),
            Err(ControlError::DomainExists(_))
        ));
        let page = fx
            .run(ListCustomDomains {
                limit: None,
                prefix: Some("app.".into()),
                next_token: None,
            })
            .unwrap();
        assert_eq!(page.custom_domains.len(), 1);
        let https = fx.run_body(
            UpdateCustomDomain {
                domain_name: "app.example.com".into(),
            },
            json!({"protocol": "HTTP,HTTPS"}),
        );
        match https {
            Err(ControlError::Invalid(e)) => assert_eq!(e.field, "certConfig"),
            other => panic!("{other:?}"),
        }
        let bad_cert = fx.run_body(
            UpdateCustomDomain {
                domain_name: "app.example.com".into(),
            },
            json!({"certConfig": {"certName": "c", "certificate": "not pem", "privateKey": "x"}}),
        );
        match bad_cert {
            Err(ControlError::Invalid(e)) => assert_eq!(e.field, "certConfig.certificate"),
            other => panic!("{other:?}"),
        }
        fx.run(DeleteCustomDomain {
            domain_name: "app.example.com".into(),
        })
        .unwrap();
        assert!(fx.cp.custom_domain("app.example.com").is_none());
        let fx = fx.restart();
        fx.cp.load().unwrap();
        assert!(fx.cp.custom_domain("app.example.com").is_none());
    }
}
