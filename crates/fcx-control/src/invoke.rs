//! The invoke entry, the hot path: qualifier resolution (memory only), then the scheduler
//! for a synchronous call or the durable queue for an asynchronous one. No store read, no
//! blocking call, and errors of the scheduler and the async service pass through as they are.

pub use fcx_async::{Accepted, HttpRequestShape, Origin};
pub use fcx_runtime::body::{Body, BoxError, ClientBodyError};
pub use fcx_scheduler::{
    CallContext, CallFacts, HttpInvokeRequest, HttpInvokeResponse, InvokeRequest, InvokeResponse,
    TraceHeaders,
};

use fcx_model::versions::validate_version_id;

use crate::{AsyncError, ControlError, ControlPlane, SchedulerError};

/// An asynchronous invocation to put in the queue.
pub struct AsyncInvocation<'a> {
    /// The function to invoke.
    pub function: &'a str,
    /// What the qualifier resolved to (a version id or `LATEST`): a retry runs what the
    /// first attempt ran.
    pub qualifier: &'a str,
    /// The event.
    pub payload: Vec<u8>,
    /// The request id answered in the 202 and used by every attempt.
    pub request_id: String,
    /// Caller-chosen task id (`x-fc-async-task-id`), checked by [`ControlPlane::accepts_async`].
    pub task_id: Option<String>,
    /// The trigger it came through, and the HTTP request to replay for a trigger call.
    pub origin: Origin,
}

impl ControlPlane {
    /// The version an invocation with `qualifier` runs: `None` for LATEST, a version id as
    /// given, or the version an alias routes this request to (drawn when it splits traffic).
    pub fn resolve(&self, function: &str, qualifier: &str) -> Result<Option<String>, ControlError> {
        self.resolve_with(function, qualifier, uniform)
    }

    pub(crate) fn resolve_with(
        &self,
        function: &str,
        qualifier: &str,
        draw: impl FnOnce() -> f64,
    ) -> Result<Option<String>, ControlError> {
        if let Some(secs) = self.out_of_sync() {
            return Err(ControlError::OutOfSync { secs });
        }
        if qualifier == "LATEST" {
            return Ok(None);
        }
        if validate_version_id("qualifier", qualifier).is_ok() {
            return Ok(Some(qualifier.to_owned()));
        }
        match self.aliases.pick(function, qualifier, draw) {
            Some(version) => Ok(Some(version)),
            None if self.node.has_function(function) => Err(ControlError::AliasNotFound {
                function: function.to_owned(),
                alias: qualifier.to_owned(),
            }),
            None => Err(ControlError::FunctionNotFound(function.to_owned())),
        }
    }

    /// Runs one synchronous invocation of `version` of `function` (`None`: LATEST).
    pub async fn invoke(
        &self,
        function: &str,
        version: Option<&str>,
        request: InvokeRequest,
    ) -> Result<InvokeResponse, SchedulerError> {
        self.scheduler
            .invoke_version(function, version, request)
            .await
    }

    /// Whether an asynchronous invocation of `function` with `task_id` may be queued: the id
    /// follows FC's rule and the function is deployed. Checked before the payload is read.
    pub fn accepts_async(&self, function: &str, task_id: Option<&str>) -> Result<(), ControlError> {
        if let Some(id) = task_id {
            fcx_model::async_config::validate_task_id(id)?;
        }
        if !self.node.has_function(function) {
            return Err(ControlError::FunctionNotFound(function.to_owned()));
        }
        Ok(())
    }

    /// Durably queues an asynchronous invocation; returns once it is on disk.
    pub async fn enqueue(&self, job: AsyncInvocation<'_>) -> Result<Accepted, AsyncError> {
        self.asyncs
            .enqueue(
                job.function,
                job.qualifier,
                job.payload,
                job.request_id,
                job.task_id,
                job.origin,
            )
            .await
    }
}

/// A uniform number in `[0, 1)` (six decimal digits are plenty for traffic shares).
fn uniform() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::testing::Fixture;
    use crate::ControlError;

    /// splitmix64: a seeded, deterministic stream of uniform numbers in `[0, 1)`.
    fn seeded(mut state: u64) -> impl FnMut() -> f64 {
        move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn with_versions_and_alias(weights: serde_json::Value) -> Fixture {
        let fx = Fixture::new();
        fx.create("f");
        fx.publish("f");
        fx.publish("f");
        let alias =
            json!({"aliasName": "canary", "versionId": "1", "additionalVersionWeight": weights});
        fx.create_alias("f", alias);
        fx
    }

    #[test]
    fn latest_and_version_ids_resolve_without_a_draw() {
        let fx = Fixture::new();
        let never = || -> f64 { panic!("drew without an alias") };
        assert_eq!(fx.cp.resolve_with("f", "LATEST", never).unwrap(), None);
        assert_eq!(
            fx.cp.resolve_with("f", "12", never).unwrap().as_deref(),
            Some("12")
        );
    }

    #[test]
    fn weighted_alias_sends_its_share_to_the_additional_version() {
        let fx = with_versions_and_alias(json!({"2": 0.3}));
        let mut draw = seeded(42);
        let mut to_two = 0;
        for _ in 0..10_000 {
            match fx
                .cp
                .resolve_with("f", "canary", &mut draw)
                .unwrap()
                .as_deref()
            {
                Some("2") => to_two += 1,
                Some("1") => {}
                other => panic!("resolved to {other:?}"),
            }
        }
        // 30 % of 10 000 seeded draws; the seed makes the count the same on every run.
        assert!(
            (2_800..=3_200).contains(&to_two),
            "{to_two} of 10000 went to version 2"
        );
    }

    #[test]
    fn unknown_alias_of_a_known_function_is_alias_not_found() {
        let fx = with_versions_and_alias(json!({}));
        let e = fx.cp.resolve("f", "prod").unwrap_err();
        assert!(
            matches!(&e, ControlError::AliasNotFound { alias, .. } if alias == "prod"),
            "{e}"
        );
        let e = fx.cp.resolve("nope", "prod").unwrap_err();
        assert!(
            matches!(&e, ControlError::FunctionNotFound(n) if n == "nope"),
            "{e}"
        );
    }

    #[test]
    fn async_invocations_need_a_deployed_function_and_a_valid_task_id() {
        let fx = Fixture::new();
        fx.create("f");
        fx.cp.accepts_async("f", None).unwrap();
        fx.cp.accepts_async("f", Some("job_1")).unwrap();
        match fx.cp.accepts_async("f", Some("1-starts-with-a-digit")) {
            Err(ControlError::Invalid(e)) => assert_eq!(e.field, "x-fc-async-task-id"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            fx.cp.accepts_async("gone", None),
            Err(ControlError::FunctionNotFound(_))
        ));
    }
}
