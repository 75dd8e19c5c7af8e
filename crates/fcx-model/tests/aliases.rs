//! FC 2.0 spellings accepted as aliases.

mod common;

use common::*;
use serde_json::json;

#[test]
fn top_level_initializer_and_timeout() {
    let body = without(custom_body(), "instanceLifecycleConfig");
    let body = with(body, "initializer", json!("index.init"));
    let body = with(body, "initializationTimeout", json!(30));
    let f = record(&body);
    let init = f.initializer().unwrap();
    assert_eq!(init.handler, "index.init");
    assert_eq!(init.timeout, 30);

    let err = create_err(&with(
        with(
            without(custom_body(), "instanceLifecycleConfig"),
            "initializer",
            json!("i"),
        ),
        "initializationTimeout",
        json!(301),
    ));
    assert_eq!(err.field, "initializationTimeout");
    // Both spellings at once are ambiguous.
    let err = create_err(&with(custom_body(), "initializer", json!("x")));
    assert_eq!(err.field, "initializer");
}

#[test]
fn pre_freeze_hook() {
    let f = record(&with(
        custom_body(),
        "instanceLifecycleConfig.preFreeze",
        json!({"handler": "freeze", "timeout": 5}),
    ));
    let h = f.instance_lifecycle_config.pre_freeze.as_ref().unwrap();
    assert_eq!((h.handler.as_str(), h.timeout), ("freeze", 5));
}

#[test]
fn container_args_instance_id_and_web_server_mode() {
    let body = with(
        container_body(),
        "customContainerConfig.command",
        json!(["python3"]),
    );
    let body = with(body, "customContainerConfig.args", json!(["app.py"]));
    let body = with(body, "customContainerConfig.instanceID", json!("cri-123"));
    let body = with(body, "customContainerConfig.webServerMode", json!(false));
    let f = record(&body);
    let c = f.custom_container_config.as_ref().unwrap();
    assert_eq!(c.entrypoint, ["python3"]);
    assert_eq!(c.command, ["app.py"]);
    assert_eq!(c.acr_instance_id.as_deref(), Some("cri-123"));
    assert!(!f.web_server_mode());

    // FC 2.0 sent the lists as JSON strings.
    let body = with(
        container_body(),
        "customContainerConfig.command",
        json!("[\"python3\"]"),
    );
    let body = with(
        body,
        "customContainerConfig.args",
        json!("[\"app.py\", \"-v\"]"),
    );
    let f = record(&body);
    let c = f.custom_container_config.as_ref().unwrap();
    assert_eq!(c.entrypoint, ["python3"]);
    assert_eq!(c.command, ["app.py", "-v"]);

    let err = create_err(&with(
        container_body(),
        "customContainerConfig.command",
        json!("python3"),
    ));
    assert_eq!(err.field, "customContainerConfig.command");

    // args with entrypoint mixes the FC 2.0 and FC 3.0 meanings of command.
    let body = with(
        container_body(),
        "customContainerConfig.entrypoint",
        json!(["a"]),
    );
    let err = create_err(&with(body, "customContainerConfig.args", json!(["b"])));
    assert_eq!(err.field, "customContainerConfig.args");
}

#[test]
fn custom_runtime_web_server_mode() {
    let f = record(&with(
        custom_body(),
        "customRuntimeConfig.webServerMode",
        json!(false),
    ));
    assert!(!f.web_server_mode());
    assert!(record(&custom_body()).web_server_mode());
}

#[test]
fn ca_port_sets_the_config_port() {
    let mut body = with(container_body(), "caPort", json!(8081));
    body["customContainerConfig"]
        .as_object_mut()
        .unwrap()
        .remove("port");
    let f = record(&body);
    assert_eq!(f.port(), 8081);
    let f = record(&with(
        without(custom_body(), "customRuntimeConfig"),
        "caPort",
        json!(7000),
    ));
    assert_eq!(f.port(), 7000);
    assert!(f.web_server_mode());
    // A different explicit port is a conflict.
    let err = create_err(&with(custom_body(), "caPort", json!(7000)));
    assert_eq!(err.field, "caPort");
    // Same value is fine.
    assert!(create(&with(custom_body(), "caPort", json!(8080))).is_ok());
}
