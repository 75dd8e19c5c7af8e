//! UpdateFunction parsing and application.

mod common;

use common::*;
use fcx_model::{parse_update, Function, ModelError, UpdateFunctionInput};
use serde_json::{json, Value};

fn update(f: &mut Function, body: Value) -> Result<(), ModelError> {
    let input = parse_update(&f.function_name, body.to_string().as_bytes())?;
    f.apply_update(input, "2026-11-26T00:00:00Z")
}

#[test]
fn partial_update_changes_only_given_fields() {
    let mut f = record(&custom_body());
    let before = f.clone();
    update(
        &mut f,
        json!({"timeout": 60, "environmentVariables": {"A": "1"}, "customRuntimeConfig": {"port": 9001}}),
    )
    .unwrap();
    assert_eq!(f.timeout, 60);
    assert_eq!(f.environment_variables["A"], "1");
    assert_eq!(f.port(), 9001);
    // Untouched: the rest of the runtime config, memory, the initializer, timestamps of creation.
    let rc = f.custom_runtime_config.as_ref().unwrap();
    assert_eq!(rc.command, ["python3", "app.py"]);
    assert_eq!(rc.args, ["-v"]);
    assert_eq!(f.memory_size, before.memory_size);
    assert_eq!(f.initializer(), before.initializer());
    assert_eq!(f.created_time, before.created_time);
    assert_eq!(f.last_modified_time, "2026-11-26T00:00:00Z");
    assert_eq!(f.function_arn, before.function_arn);

    // Environment variables are replaced as a whole.
    update(&mut f, json!({"environmentVariables": {"B": "2"}})).unwrap();
    assert_eq!(f.environment_variables.len(), 1);
    assert_eq!(f.environment_variables["B"], "2");
}

#[test]
fn empty_update_only_touches_last_modified_time() {
    let mut f = record(&custom_body());
    let before = f.clone();
    update(&mut f, json!({})).unwrap();
    assert_eq!(
        Function {
            last_modified_time: before.last_modified_time.clone(),
            ..f
        },
        before
    );
}

#[test]
fn update_errors_name_fields_and_leave_function_unchanged() {
    let mut f = record(&custom_body());
    let before = f.clone();
    let err = update(&mut f, json!({"timeout": 0})).unwrap_err();
    assert_eq!(err.field, "timeout");
    let err = update(&mut f, json!({"nope": 1})).unwrap_err();
    assert_eq!(err.field, "nope");
    assert!(err.message.contains("UpdateFunction"), "{err}");
    let err = update(&mut f, json!({"tags": []})).unwrap_err();
    assert_eq!(err.field, "tags");
    // Valid fields before an invalid one are not applied either.
    let err = f
        .apply_update(
            UpdateFunctionInput {
                timeout: Some(30),
                custom_container_config: Some(Default::default()),
                ..Default::default()
            },
            "later",
        )
        .unwrap_err();
    assert_eq!(err.field, "customContainerConfig");
    assert_eq!(f, before);
}

#[test]
fn function_name_cannot_change() {
    let mut f = record(&custom_body());
    update(&mut f, json!({"functionName": "hello", "timeout": 5})).unwrap();
    let err = update(&mut f, json!({"functionName": "other"})).unwrap_err();
    assert_eq!(err.field, "functionName");
    assert!(err.message.contains("\"other\""), "{err}");
}

#[test]
fn cpu_memory_ratio_rechecked_against_stored_values() {
    let body = with(custom_body(), "cpu", json!(1));
    let mut f = record(&with(body, "memorySize", json!(2048)));
    let err = update(&mut f, json!({"memorySize": 8192})).unwrap_err();
    assert_eq!(err.field, "memorySize");
    let err = update(&mut f, json!({"cpu": 4})).unwrap_err();
    assert_eq!(err.field, "cpu");
    update(&mut f, json!({"cpu": 2})).unwrap();
    assert_eq!(f.cpu, Some(2.0));
    // Without cpu there is no ratio to keep.
    let mut g = record(&custom_body());
    update(&mut g, json!({"memorySize": 32768})).unwrap();
}

#[test]
fn hooks_merge_and_remove() {
    let mut f = record(&custom_body());
    update(
        &mut f,
        json!({"instanceLifecycleConfig": {"initializer": {"timeout": 20}}}),
    )
    .unwrap();
    let init = f.initializer().unwrap();
    assert_eq!((init.handler.as_str(), init.timeout), ("init", 20));
    update(
        &mut f,
        json!({"instanceLifecycleConfig": {"preStop": {"handler": "stop"}}}),
    )
    .unwrap();
    let stop = f.instance_lifecycle_config.pre_stop.as_ref().unwrap();
    assert_eq!((stop.handler.as_str(), stop.timeout), ("stop", 3));
    assert!(f.initializer().is_some());
    update(
        &mut f,
        json!({"instanceLifecycleConfig": {"initializer": {"handler": ""}}}),
    )
    .unwrap();
    assert!(f.initializer().is_none());
    let err = update(
        &mut f,
        json!({"instanceLifecycleConfig": {"preFreeze": {"command": ["x"]}}}),
    )
    .unwrap_err();
    assert_eq!(err.field, "instanceLifecycleConfig.preFreeze.handler");
}

#[test]
fn extra_fields_update_and_null_removes() {
    let mut f = record(&with(custom_body(), "role", json!("r1")));
    update(&mut f, json!({"role": "r2", "nasConfig": {"userId": 1}})).unwrap();
    assert_eq!(f.extra["role"], "r2");
    assert_eq!(f.extra["nasConfig"], json!({"userId": 1}));
    update(&mut f, json!({"role": null})).unwrap();
    assert!(!f.extra.contains_key("role"));
}

#[test]
fn container_updates_merge_and_runtime_switches() {
    let mut f = record(&container_body());
    update(
        &mut f,
        json!({"customContainerConfig": {"image": "img:v2"}}),
    )
    .unwrap();
    let c = f.custom_container_config.as_ref().unwrap();
    assert_eq!(c.image, "img:v2");
    assert_eq!(c.port, 9000);
    let err = update(&mut f, json!({"code": {"zipFile": "UEs="}})).unwrap_err();
    assert_eq!(err.field, "code");

    // custom-container → custom drops the container config (the gateway stores the code).
    update(
        &mut f,
        json!({"runtime": "custom", "code": {"zipFile": "UEs="}}),
    )
    .unwrap();
    assert!(f.custom_container_config.is_none());
    assert_eq!(f.port(), 9000);

    // custom → custom-container needs customContainerConfig with an image.
    let err = update(&mut f, json!({"runtime": "custom-container"})).unwrap_err();
    assert_eq!(err.field, "customContainerConfig");
    update(
        &mut f,
        json!({"runtime": "custom-container", "customContainerConfig": {"image": "img:v3", "port": 8000}}),
    )
    .unwrap();
    assert_eq!(f.port(), 8000);
    assert!(f.custom_runtime_config.is_none());
    let err = update(&mut f, json!({"runtime": "python3"})).unwrap_err();
    assert_eq!(err.field, "runtime");
}

#[test]
fn ca_port_on_update_targets_existing_config() {
    let mut f = record(&container_body());
    update(&mut f, json!({"caPort": 7000})).unwrap();
    assert_eq!(f.port(), 7000);
    let mut g = record(&without(custom_body(), "customRuntimeConfig"));
    assert!(g.custom_runtime_config.is_none());
    update(&mut g, json!({"caPort": 7001})).unwrap();
    assert_eq!(g.port(), 7001);
}

#[test]
fn update_input_is_parsed_without_the_record() {
    let input = parse_update(
        "hello",
        br#"{"timeout": 9, "initializer": "init2", "customContainerConfig": {"image": "i", "command": ["a"], "args": ["b"]}}"#,
    )
    .unwrap();
    assert_eq!(input.timeout, Some(9));
    let init = input
        .instance_lifecycle_config
        .unwrap()
        .initializer
        .unwrap();
    assert_eq!(init.handler.as_deref(), Some("init2"));
    let c = input.custom_container_config.unwrap();
    assert_eq!(c.entrypoint, Some(vec!["a".to_string()]));
    assert_eq!(c.command, Some(vec!["b".to_string()]));
    assert_eq!(
        parse_update("hello", b"{\"memorySize\": 1}")
            .unwrap_err()
            .field,
        "memorySize"
    );
}

#[test]
fn body_combinations_are_checked_without_the_record() {
    for (body, field) in [
        (
            json!({"runtime": "custom-container", "code": {"zipFile": "UEs="}}),
            "code",
        ),
        (
            json!({"runtime": "custom-container", "customRuntimeConfig": {}}),
            "customRuntimeConfig",
        ),
        (
            json!({"runtime": "custom", "customContainerConfig": {"image": "i"}}),
            "customContainerConfig",
        ),
        (
            json!({"customContainerConfig": {"image": "i"}, "code": {"zipFile": "UEs="}}),
            "code",
        ),
        (
            json!({"customContainerConfig": {}, "customRuntimeConfig": {}}),
            "customRuntimeConfig",
        ),
    ] {
        let err = parse_update("hello", body.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.field, field, "{body}: {err}");
    }
}

#[test]
fn code_may_be_taken_out_before_building_or_updating() {
    // The gateway takes `code` out of the parsed input to store the package first.
    let mut input = create(&custom_body()).unwrap();
    assert!(input.code.take().is_some());
    let mut f = Function::from_create(input, "id".into(), "local", "1", "now").unwrap();
    let mut input =
        parse_update("hello", br#"{"code": {"zipFile": "UEs="}, "timeout": 7}"#).unwrap();
    assert!(input.code.take().is_some());
    f.apply_update(input, "later").unwrap();
    assert_eq!(f.timeout, 7);
    // With code left in, a container function rejects it.
    let mut g = record(&container_body());
    let input = parse_update("web", br#"{"code": {"zipFile": "UEs="}}"#).unwrap();
    assert_eq!(g.apply_update(input, "later").unwrap_err().field, "code");
}

#[test]
fn the_fcx_snapshot_extension_is_stored_merged_and_checked() {
    let body = with(custom_body(), "fcxSnapshot", json!({"enabled": true}));
    let mut f = record(&body);
    assert!(f.snapshot_enabled());
    assert!(!f.restore_hook());
    let stored = serde_json::to_value(&f).unwrap();
    assert_eq!(
        stored["fcxSnapshot"],
        json!({"enabled": true, "restoreHook": false})
    );
    // Merged field by field; turning it off keeps the hook setting for later.
    update(&mut f, json!({"fcxSnapshot": {"restoreHook": true}})).unwrap();
    assert!(f.snapshot_enabled() && f.restore_hook());
    update(&mut f, json!({"fcxSnapshot": {"enabled": false}})).unwrap();
    assert!(!f.snapshot_enabled() && !f.restore_hook());
    // Absent from records that do not use it.
    let plain = serde_json::to_value(record(&custom_body())).unwrap();
    assert!(plain.get("fcxSnapshot").is_none());
    // Unknown sub-fields and wrong types name the field.
    let err = update(&mut f, json!({"fcxSnapshot": {"enable": true}})).unwrap_err();
    assert!(err.field.starts_with("fcxSnapshot"), "{err:?}");
    let err = update(&mut f, json!({"fcxSnapshot": {"enabled": "yes"}})).unwrap_err();
    assert_eq!(err.field, "fcxSnapshot.enabled", "{err:?}");
}
