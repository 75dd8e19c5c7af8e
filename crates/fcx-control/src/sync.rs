//! Keeping the store and what this node runs consistent, in one place. A command writes the
//! store, then hands [`ControlPlane::apply`] a [`Change`] naming what it wrote; `apply`
//! reads that state back from the store and brings the node (pools, limits, async configs)
//! and the alias cache in line with it. Because a change names things instead of carrying
//! them, applying it is idempotent and the last one applied always matches the store,
//! whatever order concurrent commands finish in.
//!
//! When the store is shared (PostgreSQL), this is also where the other nodes get told:
//! `apply` publishes the change (`NOTIFY fcx_changes`), each node's listener hands what the
//! others publish to [`ControlPlane::apply_heard`], and [`ControlPlane::resync`] re-reads
//! everything every `--sync-interval` (and whenever the listener reconnects), the safety net
//! for a notification lost with a connection or a node that died between its write and its
//! NOTIFY. Heard and re-read changes are applied only where the store differs from what this
//! node applied last (a digest per document), so nothing is redeployed for nothing.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

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
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// A change as announced to the other nodes: who made it, and what it names.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Announced {
    node: String,
    change: Change,
}

/// Digests of the documents this node applied last, by (function, kind); the function
/// record itself is kind `""`, its three limit documents together `"limits"`; a custom
/// domain (no function) is kept under function `""`, kind `domain:<name>`.
pub(crate) type Seen = HashMap<(String, String), u64>;

/// The kind a digest is kept under for `change`.
fn seen_key(change: &Change) -> (String, String) {
    match change {
        Change::Function(name) => (name.clone(), String::new()),
        Change::Version { function, version } => (function.clone(), keys::version(version)),
        Change::Alias { function, alias } => (function.clone(), keys::alias(alias)),
        Change::Limits(name) => (name.clone(), "limits".into()),
        Change::AsyncConfig(name) => (name.clone(), keys::ASYNC.into()),
        Change::Trigger { function, trigger } => (function.clone(), keys::trigger(trigger)),
        Change::Domain(name) => (String::new(), format!("{DOMAIN}{name}")),
    }
}

/// Where [`seen_key`] keeps custom domains (function names are never empty).
const DOMAIN: &str = "domain:";

/// The change a stored document of `kind` belongs to (`None`: nothing a node applies).
fn change_of(function: &str, kind: &str) -> Option<Change> {
    if function.is_empty() {
        return kind
            .strip_prefix(DOMAIN)
            .map(|name| Change::Domain(name.to_owned()));
    }
    let function = function.to_owned();
    if kind.is_empty() {
        return Some(Change::Function(function));
    }
    if let Some(id) = kind.strip_prefix(keys::VERSIONS) {
        let version = id.trim_start_matches('0').to_owned();
        return Some(Change::Version { function, version });
    }
    if let Some(alias) = kind.strip_prefix(keys::ALIASES) {
        let alias = alias.to_owned();
        return Some(Change::Alias { function, alias });
    }
    if let Some(trigger) = kind.strip_prefix(keys::TRIGGERS) {
        let trigger = trigger.to_owned();
        return Some(Change::Trigger { function, trigger });
    }
    match kind {
        keys::CONCURRENCY | keys::PROVISION | keys::SCALING | "limits" => {
            Some(Change::Limits(function))
        }
        keys::ASYNC => Some(Change::AsyncConfig(function)),
        _ => None,
    }
}

/// When [`ControlPlane::apply_change`] acts on what it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Always (a local command: behaves as on a single node).
    Force,
    /// Where the store differs from what was applied last (heard or re-read changes).
    IfChanged,
    /// Never: only record the digests (after the start-up loaders).
    RecordOnly,
}

fn digest(docs: &[Option<&str>]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    docs.hash(&mut h);
    h.finish()
}

impl ControlPlane {
    /// Brings this node in line with the store after `change`, and tells the other nodes
    /// when the store is shared.
    pub(crate) fn apply(&self, change: Change) -> Result<(), ControlError> {
        tracing::debug!(?change, "applying");
        self.apply_change(&change, Mode::Force)?;
        if let Some(cluster) = &self.cluster {
            let announced = Announced {
                node: cluster.node_id().to_owned(),
                change,
            };
            let payload = serde_json::to_string(&announced).unwrap_or_default();
            // Not fatal: the others' periodic re-read picks the change up.
            if let Err(e) = cluster.publish(&payload) {
                tracing::warn!(error = %e, "cannot announce a change; other nodes see it at their next re-read");
            }
        }
        Ok(())
    }

    /// Applies a change another node announced (`payload`), where the store differs from
    /// what this node applied last.
    pub(crate) fn apply_heard(&self, payload: &str) -> Result<(), ControlError> {
        let announced: Announced = match serde_json::from_str(payload) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, payload, "ignoring an announcement that does not decode");
                return Ok(());
            }
        };
        let own = self
            .cluster
            .as_ref()
            .is_some_and(|c| c.node_id() == announced.node);
        if own {
            return Ok(());
        }
        tracing::debug!(change = ?announced.change, from = %announced.node, "heard");
        self.apply_change(&announced.change, Mode::IfChanged)
    }

    /// Re-reads everything the store holds and applies what differs from what this node
    /// applied last: the safety net behind the notifications.
    pub(crate) fn resync(&self) -> Result<(), ControlError> {
        self.reread(Mode::IfChanged)
    }

    /// Records the digests of everything the store holds (after [`ControlPlane::load`]).
    pub(crate) fn record_loaded(&self) -> Result<(), ControlError> {
        self.reread(Mode::RecordOnly)
    }

    fn reread(&self, mode: Mode) -> Result<(), ControlError> {
        let mut stored: BTreeSet<(String, String)> = BTreeSet::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.list_functions(None, after.as_deref(), 500)?;
            let Some(last) = page.last() else { break };
            after = Some(last.function_name.clone());
            for f in page {
                let name = f.function_name.clone();
                stored.insert((name.clone(), String::new()));
                for (kind, _) in self.store.function_configs_of(&name, "")? {
                    if let Some(change) = change_of(&name, &kind) {
                        stored.insert(seen_key(&change));
                    }
                }
            }
        }
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_custom_domains(None, after.as_deref(), 500)?;
            let Some(last) = page.last() else { break };
            after = Some(last.name.clone());
            for d in page {
                stored.insert(seen_key(&Change::Domain(d.name)));
            }
        }
        let seen: BTreeSet<(String, String)> = self.seen().keys().cloned().collect();
        // Functions first, so versions and aliases land on a deployed function.
        let mut keys: Vec<&(String, String)> = stored.union(&seen).collect();
        keys.sort_by_key(|(f, k)| (!k.is_empty(), f.clone(), k.clone()));
        for (function, kind) in keys {
            if let Some(change) = change_of(function, kind) {
                if let Err(e) = self.apply_change(&change, mode) {
                    tracing::warn!(?change, error = %e, "cannot apply a re-read change");
                }
            }
        }
        Ok(())
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the digest of `change`'s documents differs from the last applied one (always
    /// when `force`), recording it.
    fn changed(&self, change: &Change, docs: &[Option<&str>], mode: Mode) -> bool {
        let key = seen_key(change);
        let mut seen = self.seen();
        let absent = docs.iter().all(Option::is_none);
        let new = (!absent).then(|| digest(docs));
        let old = seen.get(&key).copied();
        match new {
            Some(d) => seen.insert(key, d),
            None => seen.remove(&key),
        };
        match mode {
            Mode::Force => true,
            Mode::IfChanged => old != new,
            Mode::RecordOnly => false,
        }
    }

    fn apply_change(&self, change: &Change, mode: Mode) -> Result<(), ControlError> {
        match change {
            Change::Function(name) => {
                let f = self.store.get_function(name)?;
                let doc = f
                    .as_ref()
                    .map(|f| serde_json::to_string(f).unwrap_or_default());
                if !self.changed(change, &[doc.as_deref()], mode) {
                    return Ok(());
                }
                match f {
                    Some(f) => self.deploy(f, None),
                    None => {
                        self.node.remove_function(name);
                        self.aliases.forget(name);
                        self.web.forget_function(name);
                        self.timers.forget_function(name);
                        self.seen().retain(|(f, _), _| f != name);
                    }
                }
            }
            Change::Version { function, version } => {
                let doc = self
                    .store
                    .function_config(function, &keys::version(version))?;
                if !self.changed(change, &[doc.as_deref()], mode) {
                    return Ok(());
                }
                match doc {
                    Some(doc) => self.deploy_version(
                        decode_version(self.store.cipher(), function, version, &doc)?.0,
                    ),
                    None => self.node.remove_version(function, version),
                }
            }
            Change::Alias { function, alias } => {
                let doc = self.store.function_config(function, &keys::alias(alias))?;
                if !self.changed(change, &[doc.as_deref()], mode) {
                    return Ok(());
                }
                match doc {
                    Some(doc) => {
                        let what = || format!("alias '{alias}' of function '{function}'");
                        self.aliases.put(function, decode::<Alias>(what, &doc)?);
                    }
                    None => self.aliases.remove(function, alias),
                }
            }
            Change::Limits(name) => {
                let docs: Vec<Option<String>> = [keys::CONCURRENCY, keys::PROVISION, keys::SCALING]
                    .iter()
                    .map(|k| self.store.function_config(name, k))
                    .collect::<Result<_, _>>()?;
                let docs: Vec<Option<&str>> = docs.iter().map(Option::as_deref).collect();
                if !self.changed(change, &docs, mode) {
                    return Ok(());
                }
                self.apply_limits(name)?
            }
            Change::AsyncConfig(name) => {
                let doc = self.store.function_config(name, keys::ASYNC)?;
                if !self.changed(change, &[doc.as_deref()], mode) {
                    return Ok(());
                }
                let config = match doc {
                    Some(doc) => Some(crate::asyncs::decode_config(name, &doc)?),
                    None => None,
                };
                self.node.set_async_config(name, config);
            }
            Change::Trigger { function, trigger } => {
                let doc = self
                    .store
                    .function_config(function, &keys::trigger(trigger))?;
                if !self.changed(change, &[doc.as_deref()], mode) {
                    return Ok(());
                }
                let stored = match doc {
                    Some(doc) => Some(decode::<Trigger>(
                        || format!("trigger '{trigger}' of function '{function}'"),
                        &doc,
                    )?),
                    None => None,
                };
                self.apply_trigger(function, trigger, stored.as_ref());
            }
            Change::Domain(name) => {
                let stored = self.store.get_custom_domain(name)?;
                let docs = stored
                    .as_ref()
                    .map(|d| [Some(d.doc.as_str()), d.private_key.as_deref()]);
                if !self.changed(change, &docs.unwrap_or([None, None]), mode) {
                    return Ok(());
                }
                let domain = match stored {
                    Some(stored) => {
                        let record = decode(|| format!("custom domain '{name}'"), &stored.doc)?;
                        Some(Domain::build(record, stored.private_key.as_deref())?)
                    }
                    None => None,
                };
                self.web.put_domain(name, domain);
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
        let code_zip = package::zip_of(&self.code, self.store.as_ref(), &mut function);
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
        let reserved = concurrency.and_then(|c| c.reserved_concurrency);
        match &self.cluster {
            None => self.node.set_limits(name, reserved, min),
            // Shared: this node's part of the minimum, and its leased share of the limit.
            Some(cluster) => {
                let part = cluster.min_part(name, min);
                self.node.set_limits(name, reserved, part);
                cluster.lease_now(&self.scheduler, name, reserved);
            }
        }
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
