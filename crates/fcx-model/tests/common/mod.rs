//! Helpers shared by the integration tests.
#![allow(dead_code)]

use fcx_model::{parse_create, CreateFunctionInput, Function, ModelError};
use serde_json::{json, Value};

/// A valid custom-runtime CreateFunction body.
pub fn custom_body() -> Value {
    json!({
        "functionName": "hello",
        "runtime": "custom.debian12",
        "handler": "index.handler",
        "code": {"zipFile": "UEsDBAoAAAAAAA=="},
        "customRuntimeConfig": {"command": ["python3", "app.py"], "args": ["-v"], "port": 8080},
        "instanceLifecycleConfig": {"initializer": {"handler": "init", "timeout": 10}}
    })
}

/// A valid custom-container CreateFunction body.
pub fn container_body() -> Value {
    json!({
        "functionName": "web",
        "runtime": "custom-container",
        "handler": "not-used",
        "customContainerConfig": {"image": "registry.example.com/ns/web:v1", "port": 9000}
    })
}

/// `base` with `key` set to `value` (a dotted path creates objects on the way).
pub fn with(mut base: Value, key: &str, value: Value) -> Value {
    let mut cur = &mut base;
    let parts: Vec<&str> = key.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = cur
            .as_object_mut()
            .unwrap()
            .entry(p.to_string())
            .or_insert_with(|| json!({}));
    }
    cur.as_object_mut()
        .unwrap()
        .insert(parts[parts.len() - 1].to_string(), value);
    base
}

/// `base` without top-level `key`.
pub fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

pub fn create(body: &Value) -> Result<CreateFunctionInput, ModelError> {
    parse_create(body.to_string().as_bytes())
}

pub fn create_err(body: &Value) -> ModelError {
    match create(body) {
        Ok(input) => panic!("expected an error for {body}, got {input:?}"),
        Err(e) => e,
    }
}

pub fn record(body: &Value) -> Function {
    let input = create(body).expect("valid body");
    Function::from_create(
        input,
        "id-1".into(),
        "local",
        "1234567890123456",
        "2026-11-25T13:36:04Z",
    )
    .expect("valid input")
}
