//! Trigger CRUD: stored and returned in FC's shape, with FC's errors.

mod support;

use serde_json::json;
use support::Server;

#[test]
fn triggers_are_stored_listed_updated_and_deleted() {
    let server = Server::start();
    server.create_function(support::testfn_function("hooked", json!({})));
    let config = json!({"authType": "anonymous", "methods": ["GET", "POST"]}).to_string();
    let r = server.post_json(
        "/2023-03-30/functions/hooked/triggers",
        &json!({"triggerName": "web", "triggerType": "http", "triggerConfig": config}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    assert_eq!(t["triggerName"], "web");
    assert_eq!(t["qualifier"], "LATEST");
    assert!(t["targetArn"]
        .as_str()
        .unwrap()
        .ends_with("functions/hooked"));

    let dup = server.post_json(
        "/2023-03-30/functions/hooked/triggers",
        &json!({"triggerName": "web", "triggerType": "http", "triggerConfig": "{}"}),
    );
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json()["Code"], "TriggerAlreadyExists");
    let bad = server.post_json(
        "/2023-03-30/functions/hooked/triggers",
        &json!({"triggerName": "x", "triggerType": "carrier-pigeon", "triggerConfig": "{}"}),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.json()["Message"]
        .as_str()
        .unwrap()
        .contains("triggerType"));

    let timer = server.post_json(
        "/2023-03-30/functions/hooked/triggers",
        &json!({"triggerName": "tick", "triggerType": "timer", "triggerConfig": "{\"cronExpression\":\"@every 1m\"}"}),
    );
    assert_eq!(timer.status, 200, "{}", timer.text());
    let list = server
        .request(
            "GET",
            "/2023-03-30/functions/hooked/triggers?limit=1",
            &[],
            b"",
        )
        .json();
    assert_eq!(list["triggers"][0]["triggerName"], "tick");
    assert_eq!(list["nextToken"], "tick");
    let rest = server
        .request(
            "GET",
            "/2023-03-30/functions/hooked/triggers?limit=1&nextToken=tick",
            &[],
            b"",
        )
        .json();
    assert_eq!(rest["triggers"][0]["triggerName"], "web");

    let upd = server.put_json(
        "/2023-03-30/functions/hooked/triggers/web",
        &json!({"description": "public"}),
    );
    assert_eq!(upd.status, 200, "{}", upd.text());
    assert_eq!(upd.json()["description"], "public");
    let frozen = server.put_json(
        "/2023-03-30/functions/hooked/triggers/web",
        &json!({"triggerType": "timer"}),
    );
    assert_eq!(frozen.status, 400);

    assert_eq!(
        server
            .request(
                "DELETE",
                "/2023-03-30/functions/hooked/triggers/web",
                &[],
                b""
            )
            .status,
        204
    );
    let gone = server.request("GET", "/2023-03-30/functions/hooked/triggers/web", &[], b"");
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["Code"], "TriggerNotFound");
    let nofn = server.request("GET", "/2023-03-30/functions/nope/triggers", &[], b"");
    assert_eq!(nofn.json()["Code"], "FunctionNotFound");
}
