//! CreateFunction parsing and validation.

mod common;

use common::*;
use fcx_model::{parse_create, validate_function_name, Function, LifecycleHook};
use serde_json::json;

#[test]
fn valid_custom_runtime_create() {
    let f = record(&custom_body());
    assert_eq!(f.function_name, "hello");
    assert_eq!(f.function_id, "id-1");
    assert_eq!(
        f.function_arn,
        "acs:fc:local:1234567890123456:functions/hello"
    );
    assert_eq!(f.runtime, "custom.debian12");
    assert_eq!(f.handler, "index.handler");
    assert_eq!(f.description, "");
    assert_eq!(f.timeout, 3);
    assert_eq!(f.memory_size, 512);
    assert_eq!(f.cpu, None);
    assert_eq!(f.disk_size, 512);
    assert_eq!(f.instance_concurrency, 1);
    assert!(f.internet_access);
    assert_eq!(f.state, "Active");
    assert_eq!(f.created_time, "2026-11-25T13:36:04Z");
    assert_eq!(f.last_modified_time, "2026-11-25T13:36:04Z");
    assert_eq!(f.code_size, 0);
    assert!(f.custom_container_config.is_none());
    let rc = f.custom_runtime_config.as_ref().unwrap();
    assert_eq!(rc.command, ["python3", "app.py"]);
    assert_eq!(rc.args, ["-v"]);
    assert_eq!(f.port(), 8080);
    assert!(f.web_server_mode());
    assert_eq!(
        f.initializer(),
        Some(&LifecycleHook {
            handler: "init".into(),
            timeout: 10,
            command: None
        })
    );
    assert!(f.extra.is_empty());
}

#[test]
fn parse_create_keeps_code_undecoded() {
    let input = create(&custom_body()).unwrap();
    let code = input.code.unwrap();
    assert_eq!(code.zip_file.as_deref(), Some("UEsDBAoAAAAAAA=="));
    assert_eq!(input.function_name.as_deref(), Some("hello"));
}

#[test]
fn valid_container_create_with_all_settings() {
    let body = with(container_body(), "cpu", json!(1.5));
    let body = with(body, "memorySize", json!(3072));
    let body = with(body, "diskSize", json!(10240));
    let body = with(body, "timeout", json!(86400));
    let body = with(body, "instanceConcurrency", json!(200));
    let body = with(body, "internetAccess", json!(false));
    let body = with(body, "idleTimeout", json!(600));
    let body = with(body, "description", json!("ünïcødé ✓"));
    let body = with(body, "environmentVariables", json!({"A_1": "x", "b": "ü"}));
    let body = with(
        body,
        "customContainerConfig.entrypoint",
        json!(["/bin/server"]),
    );
    let body = with(
        body,
        "customContainerConfig.command",
        json!(["--port", "9000"]),
    );
    let body = with(
        body,
        "customContainerConfig.healthCheckConfig",
        json!({"httpGetUrl": "/ready", "initialDelaySeconds": 1}),
    );
    let f = record(&body);
    assert_eq!(f.cpu, Some(1.5));
    assert_eq!(f.memory_size, 3072);
    assert_eq!(f.disk_size, 10240);
    assert!(!f.internet_access);
    assert_eq!(f.idle_timeout, Some(600));
    assert_eq!(f.environment_variables.len(), 2);
    let c = f.custom_container_config.as_ref().unwrap();
    assert_eq!(c.image, "registry.example.com/ns/web:v1");
    assert_eq!(c.entrypoint, ["/bin/server"]);
    assert_eq!(c.command, ["--port", "9000"]);
    assert_eq!(
        c.health_check_config,
        Some(json!({"httpGetUrl": "/ready", "initialDelaySeconds": 1}))
    );
    assert!(f.custom_runtime_config.is_none());
    assert_eq!(f.port(), 9000);
}

#[test]
fn range_violations_name_their_field() {
    let cases = [
        ("timeout", json!(0), "timeout"),
        ("timeout", json!(86401), "timeout"),
        ("memorySize", json!(100), "memorySize"),
        ("memorySize", json!(130), "memorySize"),
        ("memorySize", json!(32768 + 64), "memorySize"),
        ("cpu", json!(0.07), "cpu"),
        ("cpu", json!(0), "cpu"),
        ("cpu", json!(16.05), "cpu"),
        ("diskSize", json!(1024), "diskSize"),
        ("instanceConcurrency", json!(0), "instanceConcurrency"),
        ("instanceConcurrency", json!(201), "instanceConcurrency"),
        (
            "customRuntimeConfig.port",
            json!(0),
            "customRuntimeConfig.port",
        ),
        (
            "customRuntimeConfig.port",
            json!(65536),
            "customRuntimeConfig.port",
        ),
        ("caPort", json!(70000), "caPort"),
        (
            "instanceLifecycleConfig.initializer.timeout",
            json!(0),
            "instanceLifecycleConfig.initializer.timeout",
        ),
        (
            "instanceLifecycleConfig.initializer.timeout",
            json!(301),
            "instanceLifecycleConfig.initializer.timeout",
        ),
        (
            "instanceLifecycleConfig.preStop.timeout",
            json!(301),
            "instanceLifecycleConfig.preStop.timeout",
        ),
        ("description", json!("d".repeat(257)), "description"),
        ("handler", json!("h".repeat(129)), "handler"),
        ("handler", json!(""), "handler"),
        (
            "customRuntimeConfig.command",
            json!(["ok", ""]),
            "customRuntimeConfig.command[1]",
        ),
        (
            "environmentVariables",
            json!({"1ABC": "x"}),
            "environmentVariables.1ABC",
        ),
        (
            "environmentVariables",
            json!({"A-B": "x"}),
            "environmentVariables.A-B",
        ),
        (
            "environmentVariables",
            json!({"FC_FUNC_CODE_PATH": "x"}),
            "environmentVariables.FC_FUNC_CODE_PATH",
        ),
        (
            "environmentVariables",
            json!({"A": "x".repeat(4000), "B": "y".repeat(100)}),
            "environmentVariables",
        ),
        (
            "environmentVariables",
            json!({"A": "nul\u{0}inside"}),
            "environmentVariables.A",
        ),
    ];
    for (key, value, field) in cases {
        let err = create_err(&with(custom_body(), key, value.clone()));
        assert_eq!(err.field, field, "{key} = {value}: {err}");
        assert!(!err.message.ends_with('.'), "{err}");
    }
}

#[test]
fn range_messages_state_rule_and_value() {
    let err = create_err(&with(custom_body(), "timeout", json!(0)));
    assert_eq!(
        err.to_string(),
        "timeout: must be between 1 and 86400, got 0"
    );
    let err = create_err(&with(custom_body(), "memorySize", json!(130)));
    assert!(err.message.contains("multiple of 64"), "{err}");
    assert!(err.message.contains("130"), "{err}");
    let err = create_err(&with(custom_body(), "diskSize", json!(1024)));
    assert!(err.message.contains("512 or 10240") && err.message.contains("1024"));
    let err = create_err(&with(
        custom_body(),
        "environmentVariables",
        json!({"A": "x".repeat(5000)}),
    ));
    assert!(
        err.message.contains("4096") && err.message.contains("5001"),
        "{err}"
    );
}

#[test]
fn valid_edges_of_ranges() {
    for (key, value) in [
        ("timeout", json!(1)),
        ("timeout", json!(86400)),
        ("memorySize", json!(128)),
        ("memorySize", json!(32768)),
        ("diskSize", json!(512)),
        ("instanceConcurrency", json!(1)),
        ("instanceConcurrency", json!(200)),
        ("customRuntimeConfig.port", json!(1)),
        ("customRuntimeConfig.port", json!(65535)),
        ("instanceLifecycleConfig.initializer.timeout", json!(300)),
        ("description", json!("é".repeat(256))),
        ("handler", json!("h".repeat(128))),
        ("cpu", json!(0.35)),
        ("cpu", json!(0.05)),
    ] {
        let body = with(custom_body(), key, value.clone());
        assert!(
            create(&body).is_ok(),
            "{key} = {value}: {:?}",
            create(&body)
        );
    }
}

#[test]
fn cpu_memory_ratio_checked_when_both_given() {
    // 2 vCPU with 1 GB: 0.5 GB per vCPU, below 1:1.
    let body = with(custom_body(), "cpu", json!(2));
    let err = create_err(&with(body.clone(), "memorySize", json!(1024)));
    assert_eq!(err.field, "cpu");
    assert!(err.message.contains("1:1 and 1:4"), "{err}");
    // 1 vCPU with 8 GB: above 1:4.
    let body2 = with(custom_body(), "cpu", json!(1));
    assert_eq!(
        create_err(&with(body2, "memorySize", json!(8192))).field,
        "cpu"
    );
    // Edges: 1:1 and 1:4.
    assert!(create(&with(body.clone(), "memorySize", json!(2048))).is_ok());
    assert!(create(&with(body.clone(), "memorySize", json!(8192))).is_ok());
    // cpu alone is not checked against the default memory.
    assert!(create(&body).is_ok());
}

#[test]
fn bad_function_names() {
    for name in [
        "".to_string(),
        "a".repeat(65),
        "1abc".to_string(),
        "-abc".to_string(),
        "a.b".to_string(),
        "héllo".to_string(),
        "a b".to_string(),
        "名前".to_string(),
    ] {
        let err = validate_function_name(&name).unwrap_err();
        assert_eq!(err.field, "functionName", "{name}");
        let err = create_err(&with(custom_body(), "functionName", json!(name)));
        assert_eq!(err.field, "functionName", "{name}: {err}");
    }
    let err = validate_function_name(&"a".repeat(65)).unwrap_err();
    assert!(
        err.message.contains("64") && err.message.contains("65"),
        "{err}"
    );
    let err = validate_function_name("a.b").unwrap_err();
    assert!(
        err.message.contains("'.'") && err.message.contains("\"a.b\""),
        "{err}"
    );
    for ok in ["a", "_a", "A-b_1", &"a".repeat(64)] {
        validate_function_name(ok).unwrap();
    }
}

#[test]
fn required_fields() {
    for key in ["functionName", "runtime", "handler"] {
        let err = create_err(&without(custom_body(), key));
        assert_eq!(err.field, key);
        assert!(err.message.contains("required"), "{err}");
    }
    let err = create_err(&without(custom_body(), "code"));
    assert_eq!(err.field, "code");
    let err = create_err(&without(container_body(), "customContainerConfig"));
    assert_eq!(err.field, "customContainerConfig");
    let err = create_err(&with(
        container_body(),
        "customContainerConfig.image",
        json!(""),
    ));
    assert_eq!(err.field, "customContainerConfig.image");
    let err = create_err(&with(
        without(container_body(), "customContainerConfig"),
        "customContainerConfig.port",
        json!(9000),
    ));
    assert_eq!(err.field, "customContainerConfig.image");
}

#[test]
fn code_and_container_are_exclusive() {
    let err = create_err(&with(
        custom_body(),
        "customContainerConfig",
        json!({"image": "x"}),
    ));
    assert_eq!(err.field, "customContainerConfig");
    let err = create_err(&with(container_body(), "code", json!({"zipFile": "UEs="})));
    assert_eq!(err.field, "code");
    let err = create_err(&with(
        container_body(),
        "customRuntimeConfig",
        json!({"port": 9000}),
    ));
    assert_eq!(err.field, "customRuntimeConfig");
}

#[test]
fn code_rules() {
    let err = create_err(&with(
        custom_body(),
        "code",
        json!({"ossBucketName": "b", "ossObjectName": "o"}),
    ));
    assert_eq!(err.field, "code.ossBucketName");
    assert!(err.message.contains("zipFile"), "{err}");
    let err = create_err(&with(custom_body(), "code", json!({"ossObjectName": "o"})));
    assert_eq!(err.field, "code.ossObjectName");
    let err = create_err(&with(custom_body(), "code", json!({"zipFile": ""})));
    assert_eq!(err.field, "code.zipFile");
    let err = create_err(&with(custom_body(), "code", json!({})));
    assert_eq!(err.field, "code.zipFile");
    let input = create(&with(
        custom_body(),
        "code",
        json!({"zipFile": "UEs=", "checksum": "123"}),
    ))
    .unwrap();
    assert_eq!(input.code.unwrap().checksum.as_deref(), Some("123"));
}

#[test]
fn other_runtimes_are_rejected() {
    for runtime in ["nodejs18", "python3.10", "Custom", "custom.debian9", ""] {
        let err = create_err(&with(custom_body(), "runtime", json!(runtime)));
        assert_eq!(err.field, "runtime");
        assert!(
            err.message.contains(
                "custom, custom.debian10, custom.debian11, custom.debian12, custom-container"
            ),
            "{err}"
        );
    }
    for runtime in ["custom", "custom.debian10", "custom.debian11"] {
        assert!(create(&with(custom_body(), "runtime", json!(runtime))).is_ok());
    }
}

#[test]
fn unknown_fields_are_rejected() {
    let err = create_err(&with(custom_body(), "memory", json!(512)));
    assert_eq!(err.field, "memory");
    assert_eq!(
        err.message,
        "unknown field, not an FC 3.0 CreateFunction field"
    );
    let err = create_err(&with(custom_body(), "FunctionName", json!("x")));
    assert_eq!(err.field, "FunctionName");
    assert!(err.message.contains("did you mean functionName?"), "{err}");
    // Output-only fields are not input fields either.
    let err = create_err(&with(custom_body(), "functionArn", json!("x")));
    assert_eq!(err.field, "functionArn");

    for (key, field) in [
        ("customRuntimeConfig.foo", "customRuntimeConfig.foo"),
        ("code.extra", "code.extra"),
        (
            "instanceLifecycleConfig.initializer.bar",
            "instanceLifecycleConfig.initializer.bar",
        ),
        (
            "instanceLifecycleConfig.postStart",
            "instanceLifecycleConfig.postStart",
        ),
        (
            "customRuntimeConfig.healthCheckConfig.path",
            "customRuntimeConfig.healthCheckConfig.path",
        ),
    ] {
        let err = create_err(&with(custom_body(), key, json!(1)));
        assert_eq!(err.field, field, "{err}");
        assert!(err.message.starts_with("unknown field"), "{err}");
    }
    let err = create_err(&with(
        container_body(),
        "customContainerConfig.cmd",
        json!([]),
    ));
    assert_eq!(err.field, "customContainerConfig.cmd");
    assert!(err.message.contains("`entrypoint`"), "{err}");
}

#[test]
fn unimplemented_fc_fields_are_kept_in_extra() {
    let vpc = json!({"vpcId": "vpc-1", "vSwitchIds": ["vsw-1"], "securityGroupId": "sg-1"});
    let body = with(custom_body(), "vpcConfig", vpc.clone());
    let body = with(body, "role", json!("acs:ram::123:role/fc"));
    let body = with(body, "tags", json!([{"key": "k", "value": "v"}]));
    let body = with(body, "logConfig", json!({"project": "p", "logstore": "l"}));
    let input = create(&body).unwrap();
    assert_eq!(input.extra.len(), 4);
    let f = Function::from_create(input, "id".into(), "cn-hangzhou", "1", "t").unwrap();
    assert_eq!(f.extra["vpcConfig"], vpc);

    let text = serde_json::to_string(&f).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["vpcConfig"], vpc);
    assert_eq!(value["role"], "acs:ram::123:role/fc");
    let back: Function = serde_json::from_str(&text).unwrap();
    assert_eq!(back, f);
    assert_eq!(back.extra.len(), 4);
}

#[test]
fn wrong_types_name_the_field_path() {
    let err = create_err(&with(custom_body(), "timeout", json!("x")));
    assert_eq!(
        err.to_string(),
        "timeout: invalid type: string \"x\", expected u32"
    );
    let cases = [
        ("memorySize", json!(-1), "memorySize"),
        ("memorySize", json!(512.5), "memorySize"),
        ("internetAccess", json!("yes"), "internetAccess"),
        (
            "customRuntimeConfig.port",
            json!("9000"),
            "customRuntimeConfig.port",
        ),
        (
            "customRuntimeConfig.command",
            json!("python3"),
            "customRuntimeConfig.command",
        ),
        ("customRuntimeConfig", json!([]), "customRuntimeConfig"),
        (
            "environmentVariables",
            json!({"A": 1}),
            "environmentVariables.A",
        ),
        (
            "instanceLifecycleConfig.initializer.timeout",
            json!(true),
            "instanceLifecycleConfig.initializer.timeout",
        ),
        ("code.zipFile", json!(12), "code.zipFile"),
    ];
    for (key, value, field) in cases {
        let err = create_err(&with(custom_body(), key, value.clone()));
        assert_eq!(err.field, field, "{key} = {value}: {err}");
        assert!(err.message.contains("invalid"), "{err}");
    }
    let err = create_err(&with(
        custom_body(),
        "customRuntimeConfig.command",
        json!(["a", 1]),
    ));
    assert_eq!(err.field, "customRuntimeConfig.command[1]");
}

#[test]
fn malformed_bodies() {
    for body in [
        &b""[..],
        b"{",
        b"{\"a\":}",
        b"\xff\xfe",
        b"{\"timeout\": 1,}",
    ] {
        let err = parse_create(body).unwrap_err();
        assert_eq!(err.field, "body");
        assert!(err.message.contains("line"), "{err}");
    }
    for (body, kind) in [
        ("[]", "an array"),
        ("null", "null"),
        ("\"x\"", "a string"),
        ("3", "a number"),
    ] {
        let err = parse_create(body.as_bytes()).unwrap_err();
        assert_eq!(err.field, "body");
        assert!(err.message.ends_with(kind), "{err}");
    }
    // Deep nesting hits serde_json's recursion limit instead of the stack.
    let deep = format!(
        "{{\"vpcConfig\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert_eq!(parse_create(deep.as_bytes()).unwrap_err().field, "body");
}

#[test]
fn oddities_do_not_panic() {
    let long_key = "ключ".repeat(100);
    let err = create_err(&with(
        custom_body(),
        "environmentVariables",
        json!({ long_key: "v" }),
    ));
    assert!(err.field.starts_with("environmentVariables.ключ"), "{err}");
    assert!(err.field.chars().count() < 100, "{err}");
    let err = create_err(&with(custom_body(), &"🦀".repeat(500), json!(1)));
    assert!(err.message.starts_with("unknown field"));
    let err = create_err(&with(custom_body(), "functionName", json!("🦀".repeat(70))));
    assert_eq!(err.field, "functionName");
    let err = create_err(&with(custom_body(), "timeout", json!(1e300)));
    assert_eq!(err.field, "timeout");
    let err = create_err(&with(custom_body(), "timeout", json!(u64::MAX)));
    assert_eq!(err.field, "timeout");
    let err = create_err(&with(custom_body(), "cpu", json!(1e308)));
    assert_eq!(err.field, "cpu");
    let err = create_err(&with(
        custom_body(),
        "description",
        json!("\u{0}".repeat(300)),
    ));
    assert_eq!(err.field, "description");
    // Nulls read as "not given".
    assert!(create(&with(custom_body(), "timeout", json!(null))).is_ok());
}

#[test]
fn create_function_fields_are_the_fc3_names_only() {
    for name in [
        "functionName",
        "code",
        "customContainerConfig",
        "vpcConfig",
        "tags",
    ] {
        assert!(fcx_model::is_create_function_field(name), "{name}");
    }
    // FC 2.0 aliases are parsed, but are not CreateFunction fields; case matters.
    for name in [
        "caPort",
        "initializer",
        "initializationTimeout",
        "functionname",
        "region",
    ] {
        assert!(!fcx_model::is_create_function_field(name), "{name}");
    }
}
