//! The stored record: JSON shape and round trip.

mod common;

use common::*;
use fcx_model::Function;
use serde_json::json;

#[test]
fn function_json_round_trip() {
    for body in [
        custom_body(),
        with(
            container_body(),
            "customContainerConfig.registryConfig",
            json!({"authConfig": {"userName": "u"}, "certConfig": {"insecure": true}}),
        ),
        with(
            with(custom_body(), "cpu", json!(0.5)),
            "memorySize",
            json!(1024),
        ),
        with(
            custom_body(),
            "gpuConfig",
            json!({"gpuType": "x", "gpuMemorySize": 8192}),
        ),
    ] {
        let mut f = record(&body);
        f.code_size = 1234;
        f.code_checksum = "5678".into();
        let text = serde_json::to_string_pretty(&f).unwrap();
        let back: Function = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f, "{text}");
    }
}

/// Issue 13: the record's JSON is what answers show, so a secret in it is "******"; the store
/// seals it instead (fcx-store's tests).
#[test]
fn registry_password_is_redacted_in_the_json_and_type_checked() {
    let body = with(
        container_body(),
        "customContainerConfig.registryConfig",
        json!({"authConfig": {"userName": "u", "password": "p4ssw0rd"}}),
    );
    let f = record(&body);
    let text = serde_json::to_string(&f).unwrap();
    assert!(!text.contains("p4ssw0rd"), "{text}");
    assert!(!format!("{f:?}").contains("p4ssw0rd"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["customContainerConfig"]["registryConfig"]["authConfig"]["password"],
        "******"
    );
    for (path, value) in [
        ("authConfig", json!({"userName": "u", "password": ["p"]})),
        ("authConfig", json!({"userName": 7})),
        ("certConfig", json!({"insecure": "yes"})),
        ("authConfig", json!({"user": "u"})),
    ] {
        let body = with(
            container_body(),
            "customContainerConfig.registryConfig",
            json!({ path: value }),
        );
        let err = fcx_model::parse_create(body.to_string().as_bytes()).unwrap_err();
        assert!(
            err.field
                .starts_with(&format!("customContainerConfig.registryConfig.{path}")),
            "{err}"
        );
    }
}

#[test]
fn json_uses_fc_field_names() {
    let f = record(&with(custom_body(), "idleTimeout", json!(60)));
    let v = serde_json::to_value(&f).unwrap();
    for key in [
        "functionName",
        "functionId",
        "functionArn",
        "runtime",
        "handler",
        "description",
        "timeout",
        "memorySize",
        "diskSize",
        "instanceConcurrency",
        "environmentVariables",
        "internetAccess",
        "idleTimeout",
        "customRuntimeConfig",
        "instanceLifecycleConfig",
        "codeSize",
        "codeChecksum",
        "createdTime",
        "lastModifiedTime",
        "state",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["customRuntimeConfig"]["port"], 8080);
    assert_eq!(v["customRuntimeConfig"]["webServerMode"], true);
    assert_eq!(
        v["instanceLifecycleConfig"],
        json!({"initializer": {"handler": "init", "timeout": 10}})
    );
    assert!(v.get("customContainerConfig").is_none());
    assert!(v.get("cpu").is_none());
}

#[test]
fn loads_minimal_stored_nested_objects_with_defaults() {
    let mut v = serde_json::to_value(record(&container_body())).unwrap();
    v["customContainerConfig"] = json!({"image": "x"});
    v.as_object_mut().unwrap().remove("instanceLifecycleConfig");
    let f: Function = serde_json::from_value(v).unwrap();
    let c = f.custom_container_config.as_ref().unwrap();
    assert_eq!(c.port, 9000);
    assert!(c.web_server_mode);
    assert!(f.initializer().is_none());
}

/// Found by the fuzzer (tests/fuzz.rs): without serde_json's exact float parsing a stored
/// number changed in its last digit on every read and write.
#[test]
fn stored_numbers_read_back_exactly() {
    let body = with(
        custom_body(),
        "tags",
        json!([-5.545339846948315e-11, 3.743287285032815e-119, 0.1]),
    );
    let f = record(&body);
    let text = serde_json::to_string(&f).unwrap();
    let back: Function = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_string(&back).unwrap(), text);
}
