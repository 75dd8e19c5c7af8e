//! Bodies of the per-function scaling APIs (FC 3.0): PutConcurrencyConfig,
//! PutProvisionConfig and PutScalingConfig. Fields fcx stores but does not act on (scheduled
//! and metric-based policies) are kept as given.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ModelError;

/// Largest `reservedConcurrency` fcx takes.
pub const RESERVED_CONCURRENCY_MAX: u32 = 100_000;
/// Largest provisioned / minimum instance count (FC's documented 0–10000).
pub const INSTANCES_MAX: u32 = 10_000;

/// PutConcurrencyConfig body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConcurrencyInput {
    /// Most requests of the function in flight at once; 0 refuses every request.
    pub reserved_concurrency: Option<u32>,
}

/// PutProvisionConfig body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvisionInput {
    /// Provisioned instances kept running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
    /// Target when no scheduled or metric policy is active (FC's newer name for `target`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_target: Option<u32>,
    /// Stored as given: fcx's provisioned instances always have their CPU.
    #[serde(rename = "alwaysAllocateCPU", skip_serializing_if = "Option::is_none")]
    pub always_allocate_cpu: Option<bool>,
    /// Stored as given: fcx has no GPUs.
    #[serde(rename = "alwaysAllocateGPU", skip_serializing_if = "Option::is_none")]
    pub always_allocate_gpu: Option<bool>,
    /// Stored, not acted on yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_actions: Option<Value>,
    /// Stored, not acted on yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_tracking_policies: Option<Value>,
}

impl ProvisionInput {
    /// Instances to keep: `defaultTarget` when given, else `target`.
    pub fn instances(&self) -> u32 {
        self.default_target.or(self.target).unwrap_or(0)
    }
}

/// PutScalingConfig body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScalingInput {
    /// Instances kept running at all times.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_instances: Option<u32>,
    /// Stored, not acted on yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_mix_mode: Option<bool>,
    /// Stored, not acted on yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_on_demand_scaling: Option<bool>,
    /// Stored, not acted on yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub horizontal_scaling_policies: Option<Value>,
    /// Stored, not acted on yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_policies: Option<Value>,
    /// Stored, not acted on yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_dispatch_policy: Option<Value>,
    /// Stored, not acted on yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resident_pool_id: Option<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ModelError> {
    crate::parse_body(body)
}

fn at_most(field: &str, value: Option<u32>, max: u32) -> Result<(), ModelError> {
    match value {
        Some(v) if v > max => Err(ModelError::new(
            field,
            format!("must be between 0 and {max}, got {v}"),
        )),
        _ => Ok(()),
    }
}

/// Parses a PutConcurrencyConfig body: `reservedConcurrency` required, at most [`RESERVED_CONCURRENCY_MAX`].
pub fn parse_concurrency(body: &[u8]) -> Result<ConcurrencyInput, ModelError> {
    let input: ConcurrencyInput = parse(body)?;
    if input.reserved_concurrency.is_none() {
        return Err(ModelError::new("reservedConcurrency", "is required"));
    }
    at_most(
        "reservedConcurrency",
        input.reserved_concurrency,
        RESERVED_CONCURRENCY_MAX,
    )?;
    Ok(input)
}

/// Parses a PutProvisionConfig body: `target` or `defaultTarget` required, at most [`INSTANCES_MAX`].
pub fn parse_provision(body: &[u8]) -> Result<ProvisionInput, ModelError> {
    let input: ProvisionInput = parse(body)?;
    if input.target.is_none() && input.default_target.is_none() {
        return Err(ModelError::new("target", "is required"));
    }
    at_most("target", input.target, INSTANCES_MAX)?;
    at_most("defaultTarget", input.default_target, INSTANCES_MAX)?;
    Ok(input)
}

/// Parses a PutScalingConfig body: `minInstances` at most [`INSTANCES_MAX`].
pub fn parse_scaling(body: &[u8]) -> Result<ScalingInput, ModelError> {
    let input: ScalingInput = parse(body)?;
    at_most("minInstances", input.min_instances, INSTANCES_MAX)?;
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_requires_and_bounds_its_field() {
        assert_eq!(
            parse_concurrency(br#"{"reservedConcurrency": 5}"#)
                .unwrap()
                .reserved_concurrency,
            Some(5)
        );
        assert_eq!(
            parse_concurrency(b"{}").unwrap_err().field,
            "reservedConcurrency"
        );
        assert_eq!(
            parse_concurrency(br#"{"reservedConcurrency": -1}"#)
                .unwrap_err()
                .field,
            "reservedConcurrency"
        );
        assert_eq!(
            parse_concurrency(br#"{"other": 1}"#).unwrap_err().field,
            "other"
        );
    }

    #[test]
    fn provision_and_scaling_bound_instance_counts() {
        assert_eq!(parse_provision(br#"{"target": 2}"#).unwrap().instances(), 2);
        assert_eq!(
            parse_provision(br#"{"target": 20000}"#).unwrap_err().field,
            "target"
        );
        assert_eq!(
            parse_scaling(br#"{"minInstances": 3}"#)
                .unwrap()
                .min_instances,
            Some(3)
        );
        assert_eq!(
            parse_scaling(br#"{"minInstances": "x"}"#)
                .unwrap_err()
                .field,
            "minInstances"
        );
    }
}
