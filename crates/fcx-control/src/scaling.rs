//! Per-function scaling (FC 3.0): concurrency (reserved concurrency), provision-config
//! (provisioned instances), scaling-config (minimum instances) and ListInstances. Documents
//! are stored, then applied to the node as limits (`sync`).

use std::marker::PhantomData;

use fcx_model::scaling;
pub use fcx_model::scaling::{ConcurrencyInput, ProvisionInput, ScalingInput};
use fcx_model::ModelError;
use fcx_scheduler::InstanceInfo;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::encode;
use crate::sync::Change;
use crate::{keys, BodyCommand, Command, ControlError, ControlPlane, OffWorker};

/// A scaling document: where the store keeps it.
pub trait Document: Serialize + DeserializeOwned + Send + 'static {
    /// The document's kind in the store (see `keys.rs`).
    const KEY: &'static str;
}

impl Document for ConcurrencyInput {
    const KEY: &'static str = keys::CONCURRENCY;
}

impl Document for ProvisionInput {
    const KEY: &'static str = keys::PROVISION;
}

impl Document for ScalingInput {
    const KEY: &'static str = keys::SCALING;
}

/// A document with Put and Get answers built the same way: its parser and answer shape.
pub trait Shown: Document + Default {
    /// Parses and validates a Put body.
    fn parse(body: &[u8]) -> Result<Self, ModelError>;
    /// The answer: the document with the function's ARN and what runs now.
    fn view(&self, arn: &str, current: usize) -> Value;
}

impl Shown for ProvisionInput {
    fn parse(body: &[u8]) -> Result<Self, ModelError> {
        scaling::parse_provision(body)
    }

    fn view(&self, arn: &str, current: usize) -> Value {
        let mut body = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        body["functionArn"] = json!(arn);
        body["target"] = json!(self.instances());
        body["defaultTarget"] = json!(self.instances());
        body["current"] = json!(current);
        body
    }
}

impl Shown for ScalingInput {
    fn parse(body: &[u8]) -> Result<Self, ModelError> {
        scaling::parse_scaling(body)
    }

    fn view(&self, arn: &str, current: usize) -> Value {
        let mut body = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        let min = self.min_instances.unwrap_or(0);
        body["functionArn"] = json!(arn);
        body["minInstances"] = json!(min);
        body["targetInstances"] = json!(min);
        body["currentInstances"] = json!(current);
        body
    }
}

impl ControlPlane {
    fn live_instances(&self, name: &str) -> usize {
        self.node.instances(name).map(|v| v.len()).unwrap_or(0)
    }
}

/// GetConcurrencyConfig / PutConcurrencyConfig's answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrencyConfig {
    /// `acs:fc:<region>:<account>:functions/<name>`.
    pub function_arn: String,
    /// Absent when the function has no concurrency config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_concurrency: Option<u32>,
}

/// PutConcurrencyConfig; the body is a `ConcurrencyInput`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutConcurrency {
    /// The function (`functionName` in the path).
    pub function_name: String,
}

impl BodyCommand for PutConcurrency {
    type Output = ConcurrencyConfig;

    fn run(
        self,
        cp: &ControlPlane,
        body: &[u8],
        _: OffWorker,
    ) -> Result<Self::Output, ControlError> {
        let name = self.function_name;
        let function_arn = cp.function_arn(&name)?;
        let input = scaling::parse_concurrency(body)?;
        let doc = encode("concurrency config", &input)?;
        cp.store
            .put_function_config(&name, keys::CONCURRENCY, &doc)?;
        cp.apply(Change::Limits(name))?;
        Ok(ConcurrencyConfig {
            function_arn,
            reserved_concurrency: input.reserved_concurrency,
        })
    }
}

/// GetConcurrencyConfig.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetConcurrency {
    /// The function (`functionName` in the path).
    pub function_name: String,
}

impl Command for GetConcurrency {
    type Output = ConcurrencyConfig;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<Self::Output, ControlError> {
        let function_arn = cp.function_arn(&self.function_name)?;
        let stored: Option<ConcurrencyInput> =
            cp.document(&self.function_name, keys::CONCURRENCY)?;
        Ok(ConcurrencyConfig {
            function_arn,
            reserved_concurrency: stored.and_then(|c| c.reserved_concurrency),
        })
    }
}

/// The function and qualifier a scaling document API names.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// The function (`functionName` in the path).
    pub function_name: String,
    /// `qualifier` in the query; only LATEST (or none) is served.
    pub qualifier: Option<String>,
}

impl Scope {
    /// The function's ARN, once the qualifier is one fcx keeps documents for: provisioned
    /// and minimum instances are kept for LATEST only.
    fn check(&self, cp: &ControlPlane) -> Result<String, ControlError> {
        let arn = cp.function_arn(&self.function_name)?;
        match self.qualifier.as_deref() {
            None | Some("LATEST") => Ok(arn),
            Some(q) => Err(ControlError::invalid(
                "qualifier",
                format!("'{q}' is not available: this fcx server serves LATEST only"),
            )),
        }
    }
}

/// PutProvisionConfig (`PutConfig<ProvisionInput>`) or PutScalingConfig
/// (`PutConfig<ScalingInput>`); the body is the document.
#[derive(Debug, Deserialize)]
#[serde(transparent, bound = "")]
pub struct PutConfig<D>(pub Scope, #[serde(skip)] pub PhantomData<fn() -> D>);

impl<D: Shown> BodyCommand for PutConfig<D> {
    type Output = Value;

    fn run(self, cp: &ControlPlane, body: &[u8], _: OffWorker) -> Result<Value, ControlError> {
        let arn = self.0.check(cp)?;
        let input = D::parse(body)?;
        let name = self.0.function_name;
        cp.store
            .put_function_config(&name, D::KEY, &encode(D::KEY, &input)?)?;
        cp.apply(Change::Limits(name.clone()))?;
        Ok(input.view(&arn, cp.live_instances(&name)))
    }
}

/// GetProvisionConfig (`GetConfig<ProvisionInput>`) or GetScalingConfig
/// (`GetConfig<ScalingInput>`): the stored document, or the defaults.
#[derive(Debug, Deserialize)]
#[serde(transparent, bound = "")]
pub struct GetConfig<D>(pub Scope, #[serde(skip)] pub PhantomData<fn() -> D>);

impl<D: Shown> Command for GetConfig<D> {
    type Output = Value;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<Value, ControlError> {
        let arn = self.0.check(cp)?;
        let name = &self.0.function_name;
        let input: D = cp.document(name, D::KEY).ok().flatten().unwrap_or_default();
        Ok(input.view(&arn, cp.live_instances(name)))
    }
}

/// DeleteConcurrencyConfig, DeleteProvisionConfig or DeleteScalingConfig, by the document
/// type `D`.
#[derive(Debug, Deserialize)]
#[serde(transparent, bound = "")]
pub struct DeleteConfig<D>(pub Scope, #[serde(skip)] pub PhantomData<fn() -> D>);

impl<D: Document> Command for DeleteConfig<D> {
    type Output = ();

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<(), ControlError> {
        self.0.check(cp)?;
        let name = self.0.function_name;
        cp.store.delete_function_config(&name, D::KEY)?;
        cp.apply(Change::Limits(name))
    }
}

/// ListInstances: the function's live instances on this node (the gateway adds the other
/// nodes').
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListInstances {
    /// The function (`functionName` in the path).
    pub function_name: String,
}

impl Command for ListInstances {
    type Output = Vec<InstanceInfo>;

    fn run(self, cp: &ControlPlane, _: OffWorker) -> Result<Self::Output, ControlError> {
        cp.function_arn(&self.function_name)?;
        let mut instances = cp
            .node
            .instances(&self.function_name)
            .map_err(ControlError::Scheduler)?;
        if let Some(id) = cp.node_id() {
            for i in &mut instances {
                i.node_id = Some(id.to_owned());
            }
        }
        Ok(instances)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::testing::{Call, Fixture};

    fn put<D: Shown>(
        fx: &Fixture,
        qualifier: Option<&str>,
        body: Value,
    ) -> Result<Value, ControlError> {
        fx.run_body(PutConfig::<D>(scope(qualifier), PhantomData), body)
    }

    fn scope(qualifier: Option<&str>) -> Scope {
        Scope {
            function_name: "f".into(),
            qualifier: qualifier.map(Into::into),
        }
    }

    fn limits(reserved: Option<u32>, min_instances: u32) -> Call {
        Call::Limits {
            function: "f".into(),
            reserved,
            min_instances,
        }
    }

    #[test]
    fn the_larger_of_provisioned_and_minimum_instances_is_kept() {
        let fx = Fixture::new();
        fx.create("f");
        fx.node.take();
        let shown = put::<ProvisionInput>(&fx, None, json!({"target": 2})).unwrap();
        assert_eq!(
            (shown["target"].clone(), shown["current"].clone()),
            (json!(2), json!(0))
        );
        put::<ScalingInput>(&fx, Some("LATEST"), json!({"minInstances": 5})).unwrap();
        put::<ProvisionInput>(&fx, None, json!({"defaultTarget": 7, "target": 1})).unwrap();
        assert_eq!(
            fx.node.take(),
            [limits(None, 2), limits(None, 5), limits(None, 7)]
        );
        fx.run(DeleteConfig::<ProvisionInput>(scope(None), PhantomData))
            .unwrap();
        assert_eq!(fx.node.take(), [limits(None, 5)]);
    }

    #[test]
    fn reserved_concurrency_is_stored_applied_and_removed() {
        let fx = Fixture::new();
        let f = fx.create("f");
        fx.node.take();
        let get = || {
            fx.run(GetConcurrency {
                function_name: "f".into(),
            })
            .unwrap()
        };
        assert_eq!(get().reserved_concurrency, None);
        let put = PutConcurrency {
            function_name: "f".into(),
        };
        let shown = fx.run_body(put, json!({"reservedConcurrency": 3})).unwrap();
        assert_eq!(
            (shown.function_arn, shown.reserved_concurrency),
            (f.function_arn, Some(3))
        );
        assert_eq!(get().reserved_concurrency, Some(3));
        fx.run(DeleteConfig::<ConcurrencyInput>(scope(None), PhantomData))
            .unwrap();
        assert_eq!(fx.node.take(), [limits(Some(3), 0), limits(None, 0)]);
    }

    #[test]
    fn other_qualifiers_are_refused_before_anything_is_stored() {
        let fx = Fixture::new();
        fx.create("f");
        fx.node.take();
        match put::<ScalingInput>(&fx, Some("prod"), json!({"minInstances": 1})) {
            Err(ControlError::Invalid(e)) => assert_eq!(e.field, "qualifier"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            fx.cp.store.function_config("f", keys::SCALING).unwrap(),
            None
        );
        assert_eq!(fx.node.take(), []);
        let missing = fx.run(ListInstances {
            function_name: "gone".into(),
        });
        assert!(matches!(missing, Err(ControlError::FunctionNotFound(_))));
    }
}
