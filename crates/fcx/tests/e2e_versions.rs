//! Versions and aliases: immutable published versions, qualifiers on invoke, alias weights,
//! FC error codes, and persistence across a restart.

mod support;

use serde_json::json;
use support::Server;

fn env_value(server: &Server, qualifier: &str, key: &str) -> String {
    let r = server.request(
        "POST",
        &format!("/2023-03-30/functions/ver/invocations?qualifier={qualifier}"),
        &[],
        b"env",
    );
    assert_eq!(r.status, 200, "{qualifier}: {}", r.text());
    r.text()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
        .unwrap_or_default()
}

fn set_v(server: &Server, v: &str) {
    let r = server.put_json(
        "/2023-03-30/functions/ver",
        &json!({"environmentVariables": {"V": v}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

fn publish(server: &Server, description: &str) -> String {
    let r = server.post_json(
        "/2023-03-30/functions/ver/versions",
        &json!({"description": description}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["versionId"].as_str().unwrap().to_owned()
}

/// `ver` with versions 1 (V=1) and 2 (V=2); LATEST has V=3.
fn three_generations(server: &Server) {
    server.create_function(support::testfn_function("ver", json!({"V": "1"})));
    assert_eq!(publish(server, "first"), "1");
    set_v(server, "2");
    assert_eq!(publish(server, "second"), "2");
    set_v(server, "3");
}

#[test]
fn published_versions_are_immutable_and_reachable_by_qualifier() {
    let server = Server::start();
    three_generations(&server);
    assert_eq!(env_value(&server, "1", "V"), "1");
    assert_eq!(env_value(&server, "2", "V"), "2");
    assert_eq!(env_value(&server, "LATEST", "V"), "3");
    assert_eq!(env_value(&server, "1", "FC_FUNCTION_VERSION"), "1");
    let headers = server
        .request(
            "POST",
            "/2023-03-30/functions/ver/invocations?qualifier=2",
            &[],
            b"headers",
        )
        .text();
    assert!(
        headers.lines().any(|l| l == "x-fc-version-id: 2"),
        "{headers}"
    );
    assert!(
        headers.lines().any(|l| l == "x-fc-qualifier: 2"),
        "{headers}"
    );

    let list = server
        .request("GET", "/2023-03-30/functions/ver/versions", &[], b"")
        .json();
    let ids: Vec<&str> = list["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["versionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["2", "1"]);
    assert_eq!(list["direction"], "BACKWARD");
    let page = server
        .request(
            "GET",
            "/2023-03-30/functions/ver/versions?direction=FORWARD&limit=1",
            &[],
            b"",
        )
        .json();
    assert_eq!(page["versions"][0]["versionId"], "1");
    assert_eq!(page["versions"][0]["description"], "first");
    assert_eq!(page["nextToken"], "2");
}

#[test]
fn aliases_route_and_answer_fc_errors() {
    let mut server = Server::start();
    three_generations(&server);
    let r = server.post_json(
        "/2023-03-30/functions/ver/aliases",
        &json!({"aliasName": "prod", "versionId": "1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["aliasName"], "prod");
    assert_eq!(env_value(&server, "prod", "V"), "1");

    let dup = server.post_json(
        "/2023-03-30/functions/ver/aliases",
        &json!({"aliasName": "prod", "versionId": "2"}),
    );
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json()["Code"], "AliasAlreadyExists");
    let missing_version = server.post_json(
        "/2023-03-30/functions/ver/aliases",
        &json!({"aliasName": "x", "versionId": "9"}),
    );
    assert_eq!(missing_version.status, 404);
    assert_eq!(missing_version.json()["Code"], "VersionNotFound");
    let bad = server.post_json(
        "/2023-03-30/functions/ver/aliases",
        &json!({"aliasName": "LATEST", "versionId": "1"}),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.json()["Message"]
        .as_str()
        .unwrap()
        .contains("aliasName"));

    let upd = server.put_json(
        "/2023-03-30/functions/ver/aliases/prod",
        &json!({"versionId": "2"}),
    );
    assert_eq!(upd.status, 200, "{}", upd.text());
    assert_eq!(env_value(&server, "prod", "V"), "2");
    let got = server
        .request("GET", "/2023-03-30/functions/ver/aliases/prod", &[], b"")
        .json();
    assert_eq!(got["versionId"], "2");
    let list = server
        .request("GET", "/2023-03-30/functions/ver/aliases", &[], b"")
        .json();
    assert_eq!(list["aliases"].as_array().unwrap().len(), 1);
    let unknown = server.request("GET", "/2023-03-30/functions/ver/aliases/nope", &[], b"");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["Code"], "AliasNotFound");

    // Versions and aliases survive a crash of the server.
    server.crash_and_restart();
    assert_eq!(env_value(&server, "prod", "V"), "2");
    assert_eq!(env_value(&server, "1", "V"), "1");

    let in_use = server.request("DELETE", "/2023-03-30/functions/ver/versions/2", &[], b"");
    assert_eq!(in_use.status, 400, "{}", in_use.text());
    assert!(in_use.json()["Message"]
        .as_str()
        .unwrap()
        .contains("alias 'prod'"));
    assert_eq!(
        server
            .request("DELETE", "/2023-03-30/functions/ver/aliases/prod", &[], b"")
            .status,
        204
    );
    assert_eq!(
        server
            .request("DELETE", "/2023-03-30/functions/ver/versions/2", &[], b"")
            .status,
        204
    );
    let gone = server.request(
        "POST",
        "/2023-03-30/functions/ver/invocations?qualifier=2",
        &[],
        b"env",
    );
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["Code"], "VersionNotFound");
    // The next version id is never reused.
    assert_eq!(publish(&server, "third"), "3");
}

#[test]
fn alias_weights_split_traffic_within_six_standard_deviations() {
    let server = Server::start();
    three_generations(&server);
    let r = server.post_json(
        "/2023-03-30/functions/ver/aliases",
        &json!({"aliasName": "canary", "versionId": "1", "additionalVersionWeight": {"2": 0.2}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    const N: usize = 1000;
    let to_v2 = (0..N)
        .filter(|_| env_value(&server, "canary", "V") == "2")
        .count();
    // Binomial(1000, 0.2): mean 200, standard deviation 12.65; 6 sigma = 76.
    let sigma = (N as f64 * 0.2 * 0.8).sqrt();
    let off = (to_v2 as f64 - N as f64 * 0.2).abs();
    assert!(
        off <= 6.0 * sigma,
        "{to_v2} of {N} went to version 2 (expected 200 ± {:.0})",
        6.0 * sigma
    );
}
