//! Fuzzing the function JSON parsers (CreateFunction / UpdateFunction bodies) with proptest:
//! arbitrary bytes, and arbitrary JSON documents made of FC's field names with values of
//! every type. Whatever comes in, parsing returns a value or a field-precise error (never
//! a panic), and a body that parses builds a record that serializes and reads back.
//!
//! Budget: `FCX_FUZZ_CASES` cases per target (CI's default is small), seeded by
//! `FCX_FUZZ_SEED` (default fixed), so a run is reproducible; `scripts/fuzz.sh` runs 1 M.

use proptest::prelude::*;
use serde_json::{Map, Value};

const FIELDS: &[&str] = &[
    "functionName",
    "runtime",
    "handler",
    "description",
    "timeout",
    "memorySize",
    "cpu",
    "diskSize",
    "instanceConcurrency",
    "environmentVariables",
    "internetAccess",
    "idleTimeout",
    "customRuntimeConfig",
    "customContainerConfig",
    "instanceLifecycleConfig",
    "code",
    "caPort",
    "initializer",
    "initializationTimeout",
    "zipFile",
    "command",
    "args",
    "port",
    "image",
    "entrypoint",
    "registryConfig",
    "authConfig",
    "userName",
    "password",
    "certConfig",
    "insecure",
    "rootCaCertBase64",
    "healthCheckConfig",
    "webServerMode",
    "preStop",
    "preFreeze",
    "tags",
    "vpcConfig",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u32..70000).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-zA-Z0-9_. -]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("custom.debian12"),
            Just("custom-container"),
            Just("custom"),
            Just("./bootstrap"),
            Just("UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="),
            Just("fcx-sealed:v1:AAAA"),
            Just("******"),
            Just("FC_X"),
        ]
        .prop_map(|s| Value::String(s.into())),
        any::<String>().prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        4 => proptest::sample::select(FIELDS).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{1,8}",
    ];
    scalar().prop_recursive(4, 48, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A create body with a valid core, then fields overwritten by fuzzed ones: reaches the
/// validation rules behind the required fields.
fn body() -> impl Strategy<Value = Value> {
    let fields = proptest::collection::vec(
        (
            proptest::sample::select(FIELDS).prop_map(str::to_owned),
            json(),
        ),
        0..6,
    );
    fields.prop_map(|fields| {
        let mut base = serde_json::json!({
            "functionName": "fuzzed",
            "runtime": "custom.debian12",
            "handler": "index.handler",
            "code": {"zipFile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},
        });
        for (k, v) in fields {
            base[k] = v;
        }
        base
    })
}

fn check(bytes: &[u8]) {
    if let Ok(input) = fcx_model::parse_create(bytes) {
        if let Ok(f) = fcx_model::Function::from_create(
            input,
            "id".into(),
            "local",
            "1",
            "2026-01-01T00:00:00Z",
        ) {
            let text = serde_json::to_string(&f).expect("a record serializes");
            let back: fcx_model::Function = serde_json::from_str(&text).expect("and reads back");
            assert_eq!(serde_json::to_string(&back).unwrap(), text);
            if let Ok(update) = fcx_model::parse_update("fuzzed", bytes) {
                let mut f = f.clone();
                let _ = f.apply_update(update, "2026-01-02T00:00:00Z");
            }
        }
    } else {
        // An error always names a field.
        let e = fcx_model::parse_create(bytes).unwrap_err();
        assert!(!e.field.is_empty(), "{e}");
    }
    let _ = fcx_model::parse_update("fuzzed", bytes);
}

#[test]
fn function_json_from_arbitrary_bytes() {
    fcx_fuzz::run(
        "function JSON (bytes)",
        256,
        proptest::collection::vec(any::<u8>(), 0..256),
        |bytes| {
            check(&bytes);
            Ok(())
        },
    );
}

#[test]
fn function_json_from_arbitrary_documents() {
    fcx_fuzz::run(
        "function JSON (documents)",
        256,
        prop_oneof![json(), body()],
        |doc| {
            check(doc.to_string().as_bytes());
            Ok(())
        },
    );
}
