//! Versions (FC 3.0): PublishFunctionVersion stores an immutable snapshot of the function
//! under an id from a per-function counter (never reused) and deploys it as a pool of its
//! own; ListFunctionVersions and DeleteFunctionVersion.

use fcx_model::versions::{self, Version};
use fcx_model::Function;
use serde::{Deserialize, Serialize};

use crate::sync::{decode_version, encode_version, Change};
use crate::time::now_rfc3339;
use crate::{keys, params, BodyCommand, Command, ControlError, ControlPlane, OffWorker};

const LIST_LIMIT_MAX: usize = 100;

/// A stored version: its record and the function as it was when published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredVersion {
    pub version: Version,
    pub function: Function,
}

impl ControlPlane {
    /// A stored version, or VersionNotFound.
    pub(crate) fn version(&self, function: &str, id: &str) -> Result<StoredVersion, ControlError> {
        let doc = self
            .store
            .function_config(function, &keys::version(id))?
            .ok_or_else(|| ControlError::VersionNotFound {
                function: function.to_owned(),
                version: id.to_owned(),
            })?;
        Ok(decode_version(self.store.cipher(), function, id, &doc)?.0)
    }

    /// The next version id of `function`, taken atomically by the store (nodes sharing it
    /// never get the same one). The counter is written before the version, so a crash in
    /// between skips an id rather than giving it out twice.
    fn take_version_id(&self, function: &str) -> Result<String, ControlError> {
        Ok(self
            .store
            .next_counter(function, keys::VERSION_COUNTER)?
            .to_string())
    }
}

/// PublishFunctionVersion; the body is a `PublishVersionInput`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishVersion {
    /// The function (`functionName` in the path).
    pub function_name: String,
}

impl BodyCommand for PublishVersion {
    type Output = Version;

    fn run(self, cp: &ControlPlane, body: &[u8], _: OffWorker) -> Result<Version, ControlError> {
        let name = self.function_name;
        let function = cp.function(&name)?;
        let input = versions::parse_publish(body)?;
        let now = now_rfc3339();
        let version = {
            let _one_at_a_time = cp.publishing.lock().unwrap_or_else(|p| p.into_inner());
            let stored = StoredVersion {
                version: Version {
                    version_id: cp.take_version_id(&name)?,
                    description: input.description.unwrap_or_default(),
                    created_time: now.clone(),
                    last_modified_time: now,
                },
                function,
            };
            let doc = encode_version(cp.store.cipher(), &stored)?;
            cp.store.put_function_config(
                &name,
                &keys::version(&stored.version.version_id),
                &doc,
            )?;
            stored.version
        };
        cp.apply(Change::Version {
            function: name,
            version: version.version_id.clone(),
        })?;
        Ok(version)
    }
}

/// ListFunctionVersions: the function's versions, a page at a time.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListVersions {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// Versions per page (1–100, default 20).
    pub limit: Option<String>,
    /// `BACKWARD` (newest first, the default) or `FORWARD`.
    pub direction: Option<String>,
    /// The previous page's `nextToken`.
    pub next_token: Option<String>,
}

/// One page of ListFunctionVersions.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionPage {
    /// The versions on this page, in `direction` order.
    pub versions: Vec<Version>,
    /// `BACKWARD` or `FORWARD`, as asked.
    pub direction: &'static str,
    /// Present when there are more: pass it as `nextToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl Command for ListVersions {
    type Output = VersionPage;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<VersionPage, ControlError> {
        let name = self.function_name;
        cp.function(&name)?;
        let limit = params::count("limit", self.limit.as_deref(), 20, LIST_LIMIT_MAX)?;
        let backward = match self.direction.as_deref() {
            None | Some("BACKWARD") => true,
            Some("FORWARD") => false,
            Some(d) => {
                return Err(ControlError::invalid(
                    "direction",
                    format!("must be FORWARD or BACKWARD, got '{d}'"),
                ))
            }
        };
        // Key order is id order; a document that does not decode is left out of the list.
        let mut all: Vec<Version> = cp
            .store
            .function_configs_of(&name, keys::VERSIONS)?
            .into_iter()
            .filter_map(|(_, d)| serde_json::from_str::<StoredVersion>(&d).ok())
            .map(|v| v.version)
            .collect();
        if backward {
            all.reverse();
        }
        let start = match params::token(&self.next_token) {
            None => 0,
            Some(t) => all
                .iter()
                .position(|v| v.version_id == t)
                .ok_or_else(|| params::bad_token("nextToken", t))?,
        };
        let next_token = all.get(start + limit).map(|v| v.version_id.clone());
        Ok(VersionPage {
            versions: all.into_iter().skip(start).take(limit).collect(),
            direction: if backward { "BACKWARD" } else { "FORWARD" },
            next_token,
        })
    }
}

/// DeleteFunctionVersion: refused while an alias routes to the version.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteVersion {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// The version (`versionId` in the path).
    pub version_id: String,
}

impl Command for DeleteVersion {
    type Output = ();

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<(), ControlError> {
        let (name, id) = (self.function_name, self.version_id);
        cp.function(&name)?;
        versions::validate_version_id("versionId", &id)?;
        cp.version(&name, &id)?;
        if let Some(alias) = cp.aliases.using_version(&name, &id) {
            return Err(ControlError::invalid(
                "versionId",
                format!(
                    "version '{id}' is used by alias '{alias}'; point the alias elsewhere first"
                ),
            ));
        }
        cp.store
            .delete_function_config(&name, &keys::version(&id))?;
        cp.apply(Change::Version {
            function: name,
            version: id,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::aliases::DeleteAlias;
    use crate::functions::UpdateFunction;
    use crate::testing::{Call, Fixture};

    fn publish(fx: &Fixture, name: &str) -> Result<Version, ControlError> {
        fx.run_body(
            PublishVersion {
                function_name: name.into(),
            },
            json!({"description": "snap"}),
        )
    }

    fn delete(fx: &Fixture, id: &str) -> Result<(), ControlError> {
        fx.run(DeleteVersion {
            function_name: "f".into(),
            version_id: id.into(),
        })
    }

    #[test]
    fn ids_count_up_and_are_never_reused() {
        let fx = Fixture::new();
        fx.create("f");
        assert_eq!(publish(&fx, "f").unwrap().version_id, "1");
        assert_eq!(publish(&fx, "f").unwrap().version_id, "2");
        delete(&fx, "2").unwrap();
        assert_eq!(publish(&fx, "f").unwrap().version_id, "3");
        let stored = fx
            .cp
            .store
            .function_config("f", keys::VERSION_COUNTER)
            .unwrap();
        assert_eq!(stored.as_deref(), Some("3"));
    }

    #[test]
    fn an_id_taken_before_a_crash_is_skipped_not_given_again() {
        let fx = Fixture::new();
        fx.create("f");
        // A crash after the counter write and before the version's: id 1 was taken.
        fx.cp
            .store
            .put_function_config("f", keys::VERSION_COUNTER, "1")
            .unwrap();
        assert_eq!(publish(&fx, "f").unwrap().version_id, "2");
    }

    #[test]
    fn concurrent_publishes_get_distinct_ids() {
        let fx = Arc::new(Fixture::new());
        fx.create("f");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let fx = Arc::clone(&fx);
                std::thread::spawn(move || publish(&fx, "f").unwrap().version_id)
            })
            .collect();
        let mut ids: Vec<u32> = threads
            .into_iter()
            .map(|t| t.join().unwrap().parse().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, (1..=8).collect::<Vec<_>>());
    }

    #[test]
    fn a_version_is_a_snapshot_deployed_as_its_own_pool() {
        let fx = Fixture::new();
        let f = fx.create("f");
        fx.node.take();
        publish(&fx, "f").unwrap();
        match fx.node.take().as_slice() {
            [Call::Deploy {
                function,
                version: Some(v),
                code_zip: Some(_),
            }] => assert_eq!((function, v.as_str()), (&f, "1")),
            other => panic!("{other:?}"),
        }
        fx.run_body(
            UpdateFunction {
                function_name: "f".into(),
            },
            json!({"timeout": 30}),
        )
        .unwrap();
        // The stored snapshot keeps the function as it was.
        assert_eq!(fx.cp.version("f", "1").unwrap().function.timeout, f.timeout);
    }

    #[test]
    fn a_version_an_alias_routes_to_cannot_be_deleted() {
        let fx = Fixture::new();
        fx.create("f");
        publish(&fx, "f").unwrap();
        fx.create_alias("f", json!({"aliasName": "prod", "versionId": "1"}));
        fx.node.take();
        match delete(&fx, "1") {
            Err(ControlError::Invalid(e)) => {
                assert_eq!(e.field, "versionId");
                assert!(e.message.contains("alias 'prod'"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fx.node.take(), []);
        fx.run(DeleteAlias {
            function_name: "f".into(),
            alias_name: "prod".into(),
        })
        .unwrap();
        delete(&fx, "1").unwrap();
        assert_eq!(
            fx.node.take(),
            [Call::RemoveVersion("f".into(), "1".into())]
        );
        assert!(matches!(
            delete(&fx, "1"),
            Err(ControlError::VersionNotFound { .. })
        ));
    }

    #[test]
    fn list_pages_newest_first_unless_forward() {
        let fx = Fixture::new();
        fx.create("f");
        for _ in 0..3 {
            publish(&fx, "f").unwrap();
        }
        let list = |direction: Option<&str>, next: Option<&str>| {
            fx.run(ListVersions {
                function_name: "f".into(),
                limit: Some("2".into()),
                direction: direction.map(Into::into),
                next_token: next.map(Into::into),
            })
        };
        let ids = |p: &VersionPage| -> Vec<String> {
            p.versions.iter().map(|v| v.version_id.clone()).collect()
        };
        let back = list(None, None).unwrap();
        assert_eq!(
            (ids(&back), back.next_token.as_deref()),
            (vec!["3".into(), "2".into()], Some("1"))
        );
        let fwd = list(Some("FORWARD"), Some("3")).unwrap();
        assert_eq!((ids(&fwd), fwd.next_token), (vec!["3".into()], None));
        match list(Some("SIDEWAYS"), None) {
            Err(ControlError::Invalid(e)) => assert_eq!(e.field, "direction"),
            other => panic!("{other:?}"),
        }
        match list(None, Some("9")) {
            Err(ControlError::Invalid(e)) => assert_eq!(e.field, "nextToken"),
            other => panic!("{other:?}"),
        }
    }
}
