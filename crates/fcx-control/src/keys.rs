//! The store's key scheme for per-function documents (the `kind` column of the store's
//! function configs). Only this crate knows it: a second store implementation keeps the
//! same keys, other crates never build them.

/// PutConcurrencyConfig's document.
pub const CONCURRENCY: &str = "concurrency";
/// PutProvisionConfig's document.
pub const PROVISION: &str = "provision";
/// PutScalingConfig's document.
pub const SCALING: &str = "scaling";
/// PutAsyncInvokeConfig's document.
pub const ASYNC: &str = "async";
/// The last version id given out for a function (ids are never reused).
pub const VERSION_COUNTER: &str = "version-counter";

/// Prefix of every version document.
pub const VERSIONS: &str = "version:";
/// Prefix of every alias document.
pub const ALIASES: &str = "alias:";
/// Prefix of every trigger document.
pub const TRIGGERS: &str = "trigger:";

/// A version's document: ids zero-padded to ten digits (FC's largest) so that the store's
/// key order is numeric order.
pub fn version(id: &str) -> String {
    format!("{VERSIONS}{id:0>10}")
}

/// An alias's document, or with a partial name, the prefix of the aliases it starts.
pub fn alias(name: &str) -> String {
    format!("{ALIASES}{name}")
}

/// A trigger's document, or with a partial name, the prefix of the triggers it starts.
pub fn trigger(name: &str) -> String {
    format!("{TRIGGERS}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_sort_in_numeric_order() {
        let mut keys = ["10", "9", "100", "1"].map(version);
        keys.sort();
        assert_eq!(
            keys,
            [
                "version:0000000001",
                "version:0000000009",
                "version:0000000010",
                "version:0000000100"
            ]
        );
        assert_eq!(version("4294967295"), "version:4294967295");
    }

    #[test]
    fn prefixes_select_only_their_kind() {
        assert!(alias("prod").starts_with(ALIASES));
        assert!(trigger("t1").starts_with(TRIGGERS));
        assert!(version("1").starts_with(VERSIONS));
        // A kind prefix never starts another kind's key.
        for (a, b) in [
            (ALIASES, VERSIONS),
            (VERSIONS, TRIGGERS),
            (TRIGGERS, ALIASES),
        ] {
            assert!(!a.starts_with(b) && !b.starts_with(a));
        }
        for fixed in [CONCURRENCY, PROVISION, SCALING, ASYNC, VERSION_COUNTER] {
            assert!(![ALIASES, VERSIONS, TRIGGERS]
                .iter()
                .any(|p| fixed.starts_with(p)));
        }
    }
}
