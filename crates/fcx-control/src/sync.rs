//! Keeping the store and what this node runs consistent, in one place. A command writes the
//! store, then hands [`ControlPlane::apply`] a [`Change`] naming what it wrote; `apply`
//! reads that state back from the store and brings the node (pools, limits, async configs)
//! and the alias cache in line with it. Because a change names things instead of carrying
//! them, applying it is idempotent and the last one applied always matches the store,
//! whatever order concurrent commands finish in.
//!
//! This is where other nodes get told when the store is shared (PostgreSQL): `apply` will
//! also publish the change (`NOTIFY`), and each node's listener will call `apply` with the
//! changes the others publish.

use fcx_model::scaling::{ConcurrencyInput, ProvisionInput, ScalingInput};
use fcx_model::triggers::Trigger;
use fcx_model::versions::Alias;
use fcx_model::Function;
use fcx_scheduler::Deployed;

use crate::error::decode;
use crate::versions::StoredVersion;
use crate::web::{Domain, HttpTrigger};
use crate::{keys, package, ControlError, ControlPlane};

/// What a command changed in the store, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// A function record was created, updated or deleted (deleting takes everything of it).
    Function(String),
    Version {
        function: String,
        version: String,
    },
    Alias {
        function: String,
        alias: String,
    },
    /// Its concurrency, provision or scaling document.
    Limits(String),
    AsyncConfig(String),
    /// A trigger was created, updated or deleted (HTTP triggers are served, timers fire).
    Trigger {
        function: String,
        trigger: String,
    },
    /// A custom domain was created, updated or deleted.
    Domain(String),
}

impl ControlPlane {
    /// Brings this node in line with the store after `change`.
    pub(crate) fn apply(&self, change: Change) -> Result<(), ControlError> {
        tracing::debug!(?change, "applying");
        match change {
            Change::Function(name) => match self.store.get_function(&name)? {
                Some(f) => self.deploy(f, None),
                None => {
                    self.node.remove_function(&name);
                    self.aliases.forget(&name);
                    self.web.forget_function(&name);
                    self.timers.forget_function(&name);
                }
            },
            Change::Version { function, version } => {
                match self
                    .store
                    .function_config(&function, &keys::version(&version))?
                {
                    Some(doc) => self.deploy_version(
                        decode_version(self.store.cipher(), &function, &version, &doc)?.0,
                    ),
                    None => self.node.remove_version(&function, &version),
                }
            }
            Change::Alias { function, alias } => {
                match self
                    .store
                    .function_config(&function, &keys::alias(&alias))?
                {
                    Some(doc) => {
                        let what = || format!("alias '{alias}' of function '{function}'");
                        self.aliases.put(&function, decode::<Alias>(what, &doc)?);
                    }
                    None => self.aliases.remove(&function, &alias),
                }
            }
            Change::Limits(name) => self.apply_limits(&name)?,
            Change::AsyncConfig(name) => {
                let config = match self.store.function_config(&name, keys::ASYNC)? {
                    Some(doc) => Some(crate::asyncs::decode_config(&name, &doc)?),
                    None => None,
                };
                self.node.set_async_config(&name, config);
            }
            Change::Trigger { function, trigger } => {
                let stored = match self
                    .store
                    .function_config(&function, &keys::trigger(&trigger))?
                {
                    Some(doc) => Some(decode::<Trigger>(
                        || format!("trigger '{trigger}' of function '{function}'"),
                        &doc,
                    )?),
                    None => None,
                };
                self.apply_trigger(&function, &trigger, stored.as_ref());
            }
            Change::Domain(name) => {
                let domain = match self.store.get_custom_domain(&name)? {
                    Some(stored) => {
                        let record = decode(|| format!("custom domain '{name}'"), &stored.doc)?;
                        Some(Domain::build(record, stored.private_key.as_deref())?)
                    }
                    None => None,
                };
                self.web.put_domain(&name, domain);
            }
        }
        Ok(())
    }

    /// Serves `trigger` of `function` as its kind is served (`None`: it was deleted).
    pub(crate) fn apply_trigger(&self, function: &str, name: &str, trigger: Option<&Trigger>) {
        let http = match trigger.map(|t| HttpTrigger::build(function, t)) {
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                tracing::warn!(function, trigger = name, error = %e, "HTTP trigger left out");
                None
            }
            None => None,
        };
        self.web.put_trigger(function, name, http);
        self.apply_timer(function, name, trigger);
    }

    /// Hands a function record (LATEST, or the snapshot of `version`) to the node, with its
    /// code package's path.
    pub(crate) fn deploy(&self, mut function: Function, version: Option<String>) {
        let code_zip = package::zip_of(&self.code, &mut function);
        let run_as = match self.store.instance_uid(
            &function.function_name,
            self.instance_uids.first,
            self.instance_uids.last,
        ) {
            Ok(uid) => Some(uid),
            Err(e) => {
                tracing::error!(function = %function.function_name, error = %e, "no instance uid");
                None
            }
        };
        self.node.deploy(Deployed {
            function,
            version_id: version,
            code_zip,
            run_as,
        });
    }

    pub(crate) fn deploy_version(&self, stored: StoredVersion) {
        self.deploy(stored.function, Some(stored.version.version_id));
    }

    /// A function's limits from its documents: reserved concurrency, and
    /// max(provisioned target, minimum instances) kept running.
    pub(crate) fn apply_limits(&self, name: &str) -> Result<(), ControlError> {
        let concurrency: Option<ConcurrencyInput> = self.document(name, keys::CONCURRENCY)?;
        let provision: ProvisionInput = self.document(name, keys::PROVISION)?.unwrap_or_default();
        let scaling: ScalingInput = self.document(name, keys::SCALING)?.unwrap_or_default();
        let min = provision
            .instances()
            .max(scaling.min_instances.unwrap_or(0));
        self.node
            .set_limits(name, concurrency.and_then(|c| c.reserved_concurrency), min);
        Ok(())
    }

    /// A function's document of `kind`, decoded (`None` when there is none).
    pub(crate) fn document<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        kind: &str,
    ) -> Result<Option<T>, ControlError> {
        self.store
            .function_config(name, kind)?
            .map(|doc| decode(|| format!("{kind} document of function '{name}'"), &doc))
            .transpose()
    }
}

/// A stored version with its function's secrets opened, and whether one was stored in
/// plain text (written before secrets were sealed).
pub(crate) fn decode_version(
    cipher: &dyn fcx_model::SecretCipher,
    function: &str,
    version: &str,
    doc: &str,
) -> Result<(StoredVersion, bool), ControlError> {
    let mut stored: StoredVersion = decode(
        || format!("version '{version}' of function '{function}'"),
        doc,
    )?;
    let plain =
        fcx_model::secret::open_all(&mut stored.function, cipher, function).map_err(|e| {
            ControlError::Store(fcx_store::StoreError::Corrupt(format!(
                "version '{version}' of function '{function}': {e}"
            )))
        })?;
    Ok((stored, plain))
}

/// A version as stored: its function's secrets sealed.
pub(crate) fn encode_version(
    cipher: &dyn fcx_model::SecretCipher,
    stored: &StoredVersion,
) -> Result<String, ControlError> {
    let mut sealed = stored.clone();
    let name = sealed.function.function_name.clone();
    fcx_model::secret::seal_all(&mut sealed.function, cipher, &name)
        .map_err(|e| ControlError::Store(fcx_store::StoreError::Corrupt(e)))?;
    crate::error::encode("version", &sealed)
}
