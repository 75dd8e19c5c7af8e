//! The label sets of fcx's series. `function` and `qualifier` name a deployed function
//! version (`qualifier` is `LATEST` or the version id an alias resolved to), so their number
//! is bounded by what is deployed, and capped on top ([`crate::Metrics::function`]).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;

/// A deployed function version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    /// The function's name.
    pub function: Arc<str>,
    /// `LATEST` or a version id.
    pub qualifier: Arc<str>,
}

/// `fcx_invocations_total`: a function version, how the invocation ended and its code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvocationLabels {
    /// The function's name.
    pub function: Arc<str>,
    /// `LATEST` or a version id.
    pub qualifier: Arc<str>,
    /// `success`, `function_error`, `throttled` or `platform_error`.
    pub outcome: &'static str,
    /// The function error's type (`UnhandledInvocationError`, `FunctionTimeout`, ...), the
    /// limit that throttled, or the platform error's FC code; empty on success.
    pub code: &'static str,
}

/// `fcx_cold_start_phase_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// The function's name.
    pub function: Arc<str>,
    /// `LATEST` or a version id.
    pub qualifier: Arc<str>,
    /// `image`, `unpack`, `create`, `ready` or `initialize`.
    pub phase: &'static str,
}

/// `fcx_throttles_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// The function's name.
    pub function: Arc<str>,
    /// `LATEST` or a version id.
    pub qualifier: Arc<str>,
    /// `reservedConcurrency`, `maxInstances` or `clusterMaxInstances`.
    pub limit: &'static str,
}

/// Series of one function (any version) and one outcome or kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionKindLabels {
    /// The function's name.
    pub function: Arc<str>,
    /// The outcome or kind (an async attempt's result, a trigger type).
    pub kind: &'static str,
}

/// Series split by one fixed word (an operation, an outcome, a code).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The operation, outcome or code.
    pub kind: &'static str,
}

/// `fcx_instances`: a function version's instances in one state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// The function's name.
    pub function: Arc<str>,
    /// `LATEST` or a version id.
    pub qualifier: Arc<str>,
    /// `starting`, `idle`, `busy` or `frozen`.
    pub state: &'static str,
}
