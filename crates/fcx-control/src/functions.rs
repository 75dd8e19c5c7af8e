//! Functions (FC 3.0): CreateFunction, GetFunction, ListFunctions, UpdateFunction and
//! DeleteFunction, with their code packages.

use fcx_model::Function;
use fcx_store::StoreError;
use serde::{Deserialize, Serialize};

use crate::sync::Change;
use crate::time::now_rfc3339;
use crate::{package, BodyCommand, Command, ControlError, ControlPlane, OffWorker};

/// Largest `limit` ListFunctions takes (FC's).
const LIST_LIMIT_MAX: usize = 100;
const LIST_LIMIT_DEFAULT: usize = 20;

/// The store's own not-found / exists answers, as the function's.
fn store_error(e: StoreError) -> ControlError {
    match e {
        StoreError::AlreadyExists(name) => ControlError::FunctionExists(name),
        StoreError::NotFound(name) => ControlError::FunctionNotFound(name),
        other => ControlError::Store(other),
    }
}

/// CreateFunction; the body is a `CreateFunctionInput`.
#[derive(Debug, Deserialize)]
pub struct CreateFunction {}

impl BodyCommand for CreateFunction {
    type Output = Function;

    fn run(self, cp: &ControlPlane, body: &[u8], _: OffWorker) -> Result<Function, ControlError> {
        let input = fcx_model::parse_create(body)?;
        let code = package::store(&cp.code, cp.store.as_ref(), input.code.as_ref())?;
        let function_id = uuid::Uuid::new_v4().to_string();
        let mut f = Function::from_create(
            input,
            function_id,
            &cp.region,
            &cp.account_id,
            &now_rfc3339(),
        )?;
        if let Some(stored) = code {
            package::record(&mut f, stored);
        }
        warn_unimplemented(&f);
        cp.store.create_function(&f).map_err(store_error)?;
        cp.apply(Change::Function(f.function_name.clone()))?;
        tracing::info!(function = %f.function_name, "function created");
        Ok(f)
    }
}

/// GetFunction.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetFunction {
    /// The function (`functionName` in the path).
    pub function_name: String,
}

impl Command for GetFunction {
    type Output = Function;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<Function, ControlError> {
        cp.function(&self.function_name)
    }
}

/// ListFunctions: functions in name order, a page at a time.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListFunctions {
    /// Functions per page (1–100, default 20).
    pub limit: Option<String>,
    /// Only functions whose names start with it.
    pub prefix: Option<String>,
    /// The previous page's `nextToken`.
    pub next_token: Option<String>,
}

/// One page of ListFunctions.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionPage {
    /// The functions on this page.
    pub functions: Vec<Function>,
    /// Present when there are more: pass it as `nextToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl Command for ListFunctions {
    type Output = FunctionPage;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<FunctionPage, ControlError> {
        let limit = crate::params::count(
            "limit",
            self.limit.as_deref(),
            LIST_LIMIT_DEFAULT,
            LIST_LIMIT_MAX,
        )?;
        let after = crate::params::token(&self.next_token);
        let mut functions = cp
            .store
            .list_functions(self.prefix.as_deref(), after, limit + 1)?;
        let next_token = if functions.len() > limit {
            functions.truncate(limit);
            functions.last().map(|f| f.function_name.clone())
        } else {
            None
        };
        Ok(FunctionPage {
            functions,
            next_token,
        })
    }
}

/// UpdateFunction; the body is an `UpdateFunctionInput`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFunction {
    /// The function (`functionName` in the path).
    pub function_name: String,
}

impl BodyCommand for UpdateFunction {
    type Output = Function;

    fn run(self, cp: &ControlPlane, body: &[u8], _: OffWorker) -> Result<Function, ControlError> {
        let name = self.function_name;
        let input = fcx_model::parse_update(&name, body)?;
        let mut f = cp.function(&name)?;
        let code = package::store(&cp.code, cp.store.as_ref(), input.code.as_ref())?;
        f.apply_update(input, &now_rfc3339())?;
        if let Some(stored) = code {
            package::record(&mut f, stored);
        }
        warn_unimplemented(&f);
        cp.store.update_function(&f).map_err(store_error)?;
        cp.apply(Change::Function(name))?;
        tracing::info!(function = %f.function_name, "function updated");
        Ok(f)
    }
}

/// DeleteFunction: the record and every document of the function (versions, aliases,
/// triggers, configs) go; its instances stop.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteFunction {
    /// The function (`functionName` in the path).
    pub function_name: String,
}

impl Command for DeleteFunction {
    type Output = ();

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<(), ControlError> {
        let name = self.function_name;
        if !cp.store.delete_function(&name).map_err(store_error)? {
            return Err(ControlError::FunctionNotFound(name));
        }
        cp.apply(Change::Function(name.clone()))?;
        tracing::info!(function = %name, "function deleted");
        Ok(())
    }
}

/// FC fields fcx stores but does not act on yet are named in the server log.
fn warn_unimplemented(f: &Function) {
    if !f.extra.is_empty() {
        let names: Vec<&str> = f.extra.keys().map(String::as_str).collect();
        tracing::warn!(
            function = %f.function_name,
            fields = %names.join(", "),
            "fields accepted and stored, but not implemented by fcx yet"
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{function_body, Call, Fixture};

    fn update(fx: &Fixture, name: &str, body: serde_json::Value) -> Result<Function, ControlError> {
        fx.run_body(
            UpdateFunction {
                function_name: name.into(),
            },
            body,
        )
    }

    #[test]
    fn create_stores_the_package_and_deploys_latest_with_it() {
        let fx = Fixture::new();
        let f = fx.create("f");
        assert_eq!(f.code_sha256.len(), 64);
        assert_eq!(fx.cp.store.get_function("f").unwrap().as_ref(), Some(&f));
        let zip = fx.cp.code.path(&f.code_sha256);
        assert!(zip.is_file(), "{}", zip.display());
        assert_eq!(
            fx.node.take(),
            [Call::Deploy {
                function: f,
                version: None,
                code_zip: Some(zip)
            }]
        );
    }

    #[test]
    fn creating_an_existing_function_changes_nothing() {
        let fx = Fixture::new();
        let first = fx.create("f");
        fx.node.take();
        let e = fx
            .run_body(CreateFunction {}, function_body("f"))
            .unwrap_err();
        assert!(
            matches!(&e, ControlError::FunctionExists(n) if n == "f"),
            "{e}"
        );
        assert_eq!(fx.node.take(), []);
        assert_eq!(fx.cp.store.get_function("f").unwrap(), Some(first));
    }

    #[test]
    fn a_bad_package_is_refused_naming_the_field_before_anything_is_stored() {
        let fx = Fixture::new();
        let mut body = function_body("f");
        body["code"]["zipFile"] = json!("bm90IGEgemlw"); // "not a zip"
        match fx.run_body(CreateFunction {}, body) {
            Err(ControlError::Invalid(e)) => {
                assert_eq!(e.field, "code.zipFile");
                assert!(
                    e.message.starts_with("not a valid zip archive"),
                    "{}",
                    e.message
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(fx.cp.store.get_function("f").unwrap(), None);
        assert_eq!(fx.node.take(), []);
    }

    #[test]
    fn update_redeploys_latest_from_the_store_and_leaves_versions_alone() {
        let fx = Fixture::new();
        fx.create("f");
        fx.publish("f");
        fx.node.take();
        let updated = update(&fx, "f", json!({"description": "v2", "timeout": 9})).unwrap();
        assert_eq!((updated.timeout, updated.description.as_str()), (9, "v2"));
        let calls = fx.node.take();
        assert_eq!(calls.len(), 1, "{calls:?}");
        match &calls[0] {
            Call::Deploy {
                function,
                version: None,
                ..
            } => assert_eq!(function, &updated),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn update_of_a_missing_function_is_not_found_and_deploys_nothing() {
        let fx = Fixture::new();
        let e = update(&fx, "gone", json!({})).unwrap_err();
        assert!(
            matches!(&e, ControlError::FunctionNotFound(n) if n == "gone"),
            "{e}"
        );
        assert_eq!(fx.node.take(), []);
    }

    #[test]
    fn delete_takes_the_function_its_documents_and_its_node_state() {
        let fx = Fixture::new();
        fx.create("f");
        fx.publish("f");
        fx.create_alias("f", json!({"aliasName": "prod", "versionId": "1"}));
        fx.put_async_config("f", json!({"maxAsyncRetryAttempts": 1}));
        assert_eq!(fx.cp.resolve("f", "prod").unwrap().as_deref(), Some("1"));
        fx.node.take();

        fx.run(DeleteFunction {
            function_name: "f".into(),
        })
        .unwrap();
        assert_eq!(fx.node.take(), [Call::RemoveFunction("f".into())]);
        assert_eq!(fx.cp.store.get_function("f").unwrap(), None);
        assert_eq!(fx.cp.store.function_configs_of("f", "").unwrap(), []);
        // The alias went with it: the invoke path now says the function is gone.
        assert!(matches!(
            fx.cp.resolve("f", "prod"),
            Err(ControlError::FunctionNotFound(_))
        ));
        let again = fx.run(DeleteFunction {
            function_name: "f".into(),
        });
        assert!(matches!(again, Err(ControlError::FunctionNotFound(_))));
    }

    #[test]
    fn list_pages_by_name_with_a_token() {
        let fx = Fixture::new();
        for name in ["c", "a", "b"] {
            fx.create(name);
        }
        let page = |limit: &str, next: Option<&str>| {
            fx.run(ListFunctions {
                limit: Some(limit.into()),
                prefix: None,
                next_token: next.map(Into::into),
            })
            .unwrap()
        };
        let first = page("2", None);
        let names: Vec<_> = first
            .functions
            .iter()
            .map(|f| f.function_name.as_str())
            .collect();
        assert_eq!(
            (names, first.next_token.as_deref()),
            (vec!["a", "b"], Some("b"))
        );
        let rest = page("2", first.next_token.as_deref());
        assert_eq!(rest.functions.len(), 1);
        assert_eq!(rest.next_token, None);
        let e = fx
            .run(ListFunctions {
                limit: Some("0".into()),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "limit: must be a number between 1 and 100, got '0'"
        );
    }
}
