//! Start-up: everything the store holds goes to this node, so a restart serves what was
//! deployed: every function (LATEST) with its versions and aliases, then the limits and the
//! async configs. A document that does not decode is named in the log and left out; the
//! server still starts.

use std::collections::BTreeSet;

use fcx_model::triggers::Trigger;
use fcx_model::versions::Alias;

use crate::error::decode;
use crate::sync::decode_version;
use crate::web::Domain;
use crate::{keys, ControlError, ControlPlane};

/// Functions read from the store per page.
const PAGE: usize = 500;

impl ControlPlane {
    pub(crate) fn load(&self) -> Result<(), ControlError> {
        let mut after: Option<String> = None;
        let mut count = 0;
        loop {
            let page = self.store.list_functions(None, after.as_deref(), PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.function_name.clone());
            for f in page {
                let name = f.function_name.clone();
                self.deploy(f, None);
                self.load_versions_and_aliases(&name)?;
                self.load_triggers(&name)?;
                count += 1;
            }
        }
        tracing::info!(count, "functions loaded");
        self.load_limits()?;
        self.load_async_configs()?;
        self.load_domains()
    }

    fn load_triggers(&self, function: &str) -> Result<(), ControlError> {
        for (kind, doc) in self.store.function_configs_of(function, keys::TRIGGERS)? {
            match decode::<Trigger>(|| format!("{kind} of function '{function}'"), &doc) {
                Ok(t) => self.apply_trigger(function, &t.trigger_name.clone(), Some(&t)),
                Err(e) => tracing::warn!(error = %e, "trigger left out"),
            }
        }
        Ok(())
    }

    fn load_domains(&self) -> Result<(), ControlError> {
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_custom_domains(None, after.as_deref(), PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.name.clone());
            for stored in page {
                let name = stored.name.clone();
                let built = decode(|| format!("custom domain '{name}'"), &stored.doc)
                    .and_then(|record| Ok(Domain::build(record, stored.private_key.as_deref())?));
                match built {
                    Ok(d) => self.web.put_domain(&name, Some(d)),
                    Err(e) => tracing::warn!(domain = %name, error = %e, "custom domain left out"),
                }
            }
        }
        Ok(())
    }

    fn load_versions_and_aliases(&self, function: &str) -> Result<(), ControlError> {
        for (kind, doc) in self.store.function_configs_of(function, keys::VERSIONS)? {
            let id = kind
                .trim_start_matches(keys::VERSIONS)
                .trim_start_matches('0');
            match decode_version(self.store.cipher(), function, id, &doc) {
                Ok((v, plain)) => {
                    if plain {
                        // Written before secrets were sealed: store it sealed now.
                        let sealed = crate::sync::encode_version(self.store.cipher(), &v)?;
                        self.store.put_function_config(function, &kind, &sealed)?;
                        tracing::info!(
                            function,
                            version = id,
                            "sealed the secrets of a stored version"
                        );
                    }
                    self.deploy_version(v)
                }
                Err(e) => tracing::warn!(error = %e, "version left out"),
            }
        }
        for (kind, doc) in self.store.function_configs_of(function, keys::ALIASES)? {
            match decode::<Alias>(|| format!("{kind} of function '{function}'"), &doc) {
                Ok(a) => self.aliases.put(function, a),
                Err(e) => tracing::warn!(error = %e, "alias left out"),
            }
        }
        Ok(())
    }

    fn load_limits(&self) -> Result<(), ControlError> {
        let mut names = BTreeSet::new();
        for kind in [keys::CONCURRENCY, keys::PROVISION, keys::SCALING] {
            names.extend(
                self.store
                    .function_configs(kind)?
                    .into_iter()
                    .map(|(n, _)| n),
            );
        }
        for name in names {
            if let Err(e) = self.apply_limits(&name) {
                tracing::warn!(function = %name, error = %e, "limits left out");
            }
        }
        Ok(())
    }

    fn load_async_configs(&self) -> Result<(), ControlError> {
        for (name, doc) in self.store.function_configs(keys::ASYNC)? {
            match crate::asyncs::decode_config(&name, &doc) {
                Ok(c) => self.node.set_async_config(&name, Some(c)),
                Err(e) => tracing::warn!(error = %e, "async invoke config left out"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomData;

    use fcx_model::scaling::ScalingInput;
    use serde_json::json;

    use crate::keys;
    use crate::scaling::{PutConcurrency, PutConfig, Scope};
    use crate::testing::{Call, Fixture};

    #[test]
    fn a_restart_serves_everything_the_store_holds() {
        let fx = Fixture::new();
        let f = fx.create("f");
        let g = fx.create("g");
        fx.publish("f");
        fx.create_alias("f", json!({"aliasName": "prod", "versionId": "1"}));
        fx.run_body(
            PutConcurrency {
                function_name: "g".into(),
            },
            json!({"reservedConcurrency": 4}),
        )
        .unwrap();
        let scope = Scope {
            function_name: "g".into(),
            qualifier: None,
        };
        let min = PutConfig::<ScalingInput>(scope, PhantomData);
        fx.run_body(min, json!({"minInstances": 2})).unwrap();
        fx.put_async_config("f", json!({"asyncTask": true}));

        let fx = fx.restart();
        assert!(
            fx.cp.resolve("f", "prod").is_err(),
            "nothing is served before loading"
        );
        fx.cp.load().unwrap();
        let calls = fx.node.take();
        let deployed: Vec<(&str, Option<&str>)> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Deploy {
                    function, version, ..
                } => Some((function.function_name.as_str(), version.as_deref())),
                _ => None,
            })
            .collect();
        assert_eq!(deployed, [("f", None), ("f", Some("1")), ("g", None)]);
        assert!(calls.contains(&Call::Deploy {
            function: f.clone(),
            version: None,
            code_zip: Some(fx.cp.code.path(&f.code_sha256)),
        }));
        assert!(calls.contains(&Call::Limits {
            function: "g".into(),
            reserved: Some(4),
            min_instances: 2
        }));
        assert!(calls
            .iter()
            .any(|c| matches!(c, Call::AsyncConfig(n, Some(c)) if n == "f" && c.task_enabled())));
        assert_eq!(fx.cp.resolve("f", "prod").unwrap().as_deref(), Some("1"));
        assert_eq!(fx.cp.store.get_function("g").unwrap(), Some(g));
    }

    #[test]
    fn a_corrupt_document_is_left_out_and_the_rest_still_loads() {
        let fx = Fixture::new();
        fx.create("f");
        fx.publish("f");
        fx.cp
            .store
            .put_function_config("f", &keys::version("2"), "{not json")
            .unwrap();
        fx.cp
            .store
            .put_function_config("f", keys::ASYNC, "[]")
            .unwrap();
        let fx = fx.restart();
        fx.cp.load().unwrap();
        let versions: Vec<Option<String>> = fx
            .node
            .take()
            .into_iter()
            .filter_map(|c| match c {
                Call::Deploy { version, .. } => Some(version),
                _ => None,
            })
            .collect();
        assert_eq!(versions, [None, Some("1".into())]);
    }
}
