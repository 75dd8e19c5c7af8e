//! Every function's aliases in memory, for qualifier resolution on the invoke path (one short
//! lock, no store read). `sync` and `load` fill it from the store.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use fcx_model::versions::Alias;

/// function → alias name → alias.
#[derive(Default)]
pub(crate) struct AliasCache(Mutex<HashMap<String, HashMap<String, Alias>>>);

impl AliasCache {
    fn map(&self) -> MutexGuard<'_, HashMap<String, HashMap<String, Alias>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, function: &str, alias: &str) -> Option<Alias> {
        self.map().get(function)?.get(alias).cloned()
    }

    pub fn put(&self, function: &str, alias: Alias) {
        self.map()
            .entry(function.to_owned())
            .or_default()
            .insert(alias.alias_name.clone(), alias);
    }

    pub fn remove(&self, function: &str, alias: &str) {
        if let Some(a) = self.map().get_mut(function) {
            a.remove(alias);
        }
    }

    /// Forgets a deleted function's aliases.
    pub fn forget(&self, function: &str) {
        self.map().remove(function);
    }

    /// An alias that routes to `version` (as its version or its additional one).
    pub fn using_version(&self, function: &str, version: &str) -> Option<String> {
        self.map()
            .get(function)?
            .values()
            .find(|a| a.version_id == version || a.additional_version_weight.contains_key(version))
            .map(|a| a.alias_name.clone())
    }

    /// The version one invocation of `alias` runs. `draw` gives a uniform number in `[0, 1)`
    /// and is called only when the alias splits traffic.
    pub fn pick(&self, function: &str, alias: &str, draw: impl FnOnce() -> f64) -> Option<String> {
        let map = self.map();
        let alias = map.get(function)?.get(alias)?;
        let r = if alias.additional_version_weight.is_empty() {
            0.0
        } else {
            draw()
        };
        Some(alias.pick(r).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn alias(name: &str, version: &str, weights: &[(&str, f64)]) -> Alias {
        Alias {
            alias_name: name.into(),
            version_id: version.into(),
            description: String::new(),
            additional_version_weight: weights
                .iter()
                .map(|(v, w)| (v.to_string(), *w))
                .collect::<BTreeMap<_, _>>(),
            created_time: String::new(),
            last_modified_time: String::new(),
        }
    }

    #[test]
    fn an_alias_without_weights_never_draws() {
        let cache = AliasCache::default();
        cache.put("f", alias("prod", "3", &[]));
        let picked = cache.pick("f", "prod", || panic!("drew for a single-version alias"));
        assert_eq!(picked.as_deref(), Some("3"));
    }

    #[test]
    fn weighted_alias_splits_by_the_draw() {
        let cache = AliasCache::default();
        cache.put("f", alias("canary", "1", &[("2", 0.25)]));
        assert_eq!(cache.pick("f", "canary", || 0.0).as_deref(), Some("2"));
        assert_eq!(cache.pick("f", "canary", || 0.2499).as_deref(), Some("2"));
        assert_eq!(cache.pick("f", "canary", || 0.25).as_deref(), Some("1"));
        assert_eq!(cache.pick("f", "canary", || 0.999).as_deref(), Some("1"));
    }

    #[test]
    fn removed_and_forgotten_aliases_are_gone() {
        let cache = AliasCache::default();
        cache.put("f", alias("a", "1", &[]));
        cache.put("f", alias("b", "2", &[("1", 0.5)]));
        cache.put("g", alias("a", "7", &[]));
        let user = cache.using_version("f", "1");
        assert!(matches!(user.as_deref(), Some("a" | "b")), "{user:?}");
        cache.remove("f", "a");
        // `b` still sends a share to version 1.
        assert_eq!(cache.using_version("f", "1").as_deref(), Some("b"));
        cache.forget("f");
        assert!(cache.get("f", "b").is_none());
        assert_eq!(cache.using_version("f", "1"), None);
        assert_eq!(cache.pick("g", "a", || 0.0).as_deref(), Some("7"));
    }
}
