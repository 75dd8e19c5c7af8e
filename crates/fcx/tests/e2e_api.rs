//! Management API shapes and bad input: every refusal is FC-shaped and names what is wrong.

mod support;

use serde_json::{json, Value};
use support::Server;

fn assert_invalid(r: &support::Response, field_in_message: &str) {
    assert_eq!(r.status, 400, "{}", r.text());
    let body = r.json();
    assert_eq!(body["Code"], "InvalidArgument", "{body}");
    let message = body["Message"].as_str().unwrap();
    assert!(
        message.contains(field_in_message),
        "message should name '{field_in_message}': {message}"
    );
    assert!(body["RequestId"].is_string());
    assert_eq!(r.header("x-fc-request-id"), body["RequestId"].as_str());
}

fn minimal_zip() -> Vec<u8> {
    support::zipper::zip_files(&[("bootstrap", b"#!/bin/sh\n", 0o755)])
}

/// Bitwise CRC-64/XZ (reflected ECMA-182 polynomial, all-ones init and xorout), written
/// independently of the server's implementation.
fn crc64_xz(bytes: &[u8]) -> u64 {
    let mut crc = u64::MAX;
    for b in bytes {
        crc ^= u64::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xC96C_5795_D787_0F42
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc64_helper_matches_the_catalogue_check_value() {
    assert_eq!(crc64_xz(b"123456789"), 0x995D_C9BB_DF19_39FA);
}

fn minimal(name: &str) -> Value {
    json!({
        "functionName": name,
        "runtime": "custom",
        "handler": "h",
        "code": { "zipFile": support::zipper::base64(&minimal_zip()) },
    })
}

#[test]
fn create_get_list_update_delete_round_trip() {
    let server = Server::start();
    let created = server.create_function(minimal("alpha"));
    assert_eq!(created["functionName"], "alpha");
    assert_eq!(created["timeout"], 3);
    assert_eq!(created["instanceConcurrency"], 1);
    assert_eq!(created["internetAccess"], true);
    assert!(created["codeSize"].as_u64().unwrap() > 0);
    // FC's codeChecksum: CRC-64/XZ of the package, in decimal.
    let zip = minimal_zip();
    assert_eq!(created["codeChecksum"], crc64_xz(&zip).to_string());
    assert_eq!(created["codeSize"], zip.len() as u64);
    assert!(created["functionArn"]
        .as_str()
        .unwrap()
        .ends_with(":functions/alpha"));

    let got = server.request("GET", "/2023-03-30/functions/alpha", &[], b"");
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), created);

    for name in ["beta", "alpine", "gamma"] {
        server.create_function(minimal(name));
    }
    let page = server.request("GET", "/2023-03-30/functions?prefix=al&limit=1", &[], b"");
    let body = page.json();
    assert_eq!(body["functions"].as_array().unwrap().len(), 1);
    assert_eq!(body["functions"][0]["functionName"], "alpha");
    let token = body["nextToken"].as_str().unwrap().to_owned();
    let page2 = server
        .request(
            "GET",
            &format!("/2023-03-30/functions?prefix=al&limit=1&nextToken={token}"),
            &[],
            b"",
        )
        .json();
    assert_eq!(page2["functions"][0]["functionName"], "alpine");
    assert!(page2.get("nextToken").is_none(), "{page2}");
    let all = server
        .request("GET", "/2023-03-30/functions", &[], b"")
        .json();
    let names: Vec<&str> = all["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["functionName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "alpine", "beta", "gamma"]);

    let updated = server.request(
        "PUT",
        "/2023-03-30/functions/alpha",
        &[],
        json!({"timeout": 30, "description": "changed"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(updated.status, 200, "{}", updated.text());
    assert_eq!(updated.json()["timeout"], 30);
    assert_eq!(updated.json()["description"], "changed");
    assert_eq!(updated.json()["codeChecksum"], created["codeChecksum"]);

    let deleted = server.request("DELETE", "/2023-03-30/functions/alpha", &[], b"");
    assert_eq!(deleted.status, 204);
    let gone = server.request("GET", "/2023-03-30/functions/alpha", &[], b"");
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["Code"], "FunctionNotFound");
    assert_eq!(
        server.invoke("alpha", b"x").json()["Code"],
        "FunctionNotFound"
    );
}

#[test]
fn unimplemented_fc_fields_are_kept_and_returned() {
    let server = Server::start();
    let mut f = minimal("withvpc");
    f["vpcConfig"] = json!({"vpcId": "vpc-1", "vSwitchIds": ["vsw-1"], "securityGroupId": "sg-1"});
    f["logConfig"] = json!({"project": "p", "logstore": "l"});
    let created = server.create_function(f);
    assert_eq!(created["vpcConfig"]["vpcId"], "vpc-1");
    let got = server
        .request("GET", "/2023-03-30/functions/withvpc", &[], b"")
        .json();
    assert_eq!(got["logConfig"]["logstore"], "l");
}

#[test]
fn bad_function_bodies_get_invalid_argument_naming_the_field() {
    let server = Server::start();
    let create = |body: &[u8]| server.request("POST", "/2023-03-30/functions", &[], body);
    assert_invalid(&create(b"{not json"), "body");
    assert_invalid(&create(b"[1,2]"), "body");

    let mut wrong_type = minimal("wt");
    wrong_type["timeout"] = json!("ten");
    assert_invalid(&create(wrong_type.to_string().as_bytes()), "timeout");

    let mut unknown = minimal("uk");
    unknown["notAnFcField"] = json!(1);
    assert_invalid(&create(unknown.to_string().as_bytes()), "notAnFcField");

    let mut nested = minimal("nested");
    nested["customRuntimeConfig"] = json!({"command": ["x"], "prot": 9000});
    assert_invalid(
        &create(nested.to_string().as_bytes()),
        "customRuntimeConfig.prot",
    );

    for (field, value) in [
        ("timeout", json!(0)),
        ("timeout", json!(86401)),
        ("memorySize", json!(100)),
        ("instanceConcurrency", json!(201)),
        ("diskSize", json!(1000)),
    ] {
        let mut f = minimal("ranges");
        f[field] = value;
        assert_invalid(&create(f.to_string().as_bytes()), field);
    }

    for bad in [
        "",
        "1abc",
        "-abc",
        "has.dot",
        "has space",
        &"x".repeat(65),
        "ünicode",
    ] {
        let mut f = minimal("x");
        f["functionName"] = json!(bad);
        assert_invalid(&create(f.to_string().as_bytes()), "functionName");
    }
    let mut ok = minimal("x");
    ok["functionName"] = json!("_ok-Name_1");
    assert_eq!(create(ok.to_string().as_bytes()).status, 200);

    let mut no_code = minimal("nocode");
    no_code.as_object_mut().unwrap().remove("code");
    assert_invalid(&create(no_code.to_string().as_bytes()), "code");

    let mut bad_b64 = minimal("badb64");
    bad_b64["code"]["zipFile"] = json!("!!!not base64!!!");
    assert_invalid(&create(bad_b64.to_string().as_bytes()), "code.zipFile");

    let mut not_zip = minimal("notzip");
    not_zip["code"]["zipFile"] = json!(support::zipper::base64(b"plain text, not a zip"));
    assert_invalid(&create(not_zip.to_string().as_bytes()), "code.zipFile");

    let mut env = minimal("env");
    env["environmentVariables"] = json!({"FC_RESERVED": "x"});
    assert_invalid(&create(env.to_string().as_bytes()), "environmentVariables");

    let mut runtime = minimal("rt");
    runtime["runtime"] = json!("nodejs18");
    assert_invalid(&create(runtime.to_string().as_bytes()), "runtime");

    let upd = server.request(
        "PUT",
        "/2023-03-30/functions/_ok-Name_1",
        &[],
        br#"{"memorySize": 7}"#,
    );
    assert_invalid(&upd, "memorySize");
    let upd = server.request(
        "PUT",
        "/2023-03-30/functions/_ok-Name_1",
        &[],
        br#"{"functionName": "other"}"#,
    );
    assert_invalid(&upd, "functionName");
    let list = server.request("GET", "/2023-03-30/functions?limit=0", &[], b"");
    assert_invalid(&list, "limit");
}

#[test]
fn duplicates_and_unknown_functions_get_fc_codes() {
    let server = Server::start();
    server.create_function(minimal("dup"));
    let again = server.post_json("/2023-03-30/functions", &minimal("dup"));
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["Code"], "FunctionAlreadyExists");
    for (method, path) in [
        ("GET", "/2023-03-30/functions/missing"),
        ("PUT", "/2023-03-30/functions/missing"),
        ("DELETE", "/2023-03-30/functions/missing"),
        ("POST", "/2023-03-30/functions/missing/invocations"),
    ] {
        let r = server.request(method, path, &[], b"{}");
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text());
        assert_eq!(r.json()["Code"], "FunctionNotFound", "{method} {path}");
    }
}

#[test]
fn oversized_bodies_get_entity_too_large_naming_the_limit() {
    let server = Server::start();
    server.create_function(minimal("big"));
    let payload = vec![b'x'; 32 * 1024 * 1024 + 1];
    let r = server.invoke("big", &payload);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Code"], "EntityTooLarge");
    assert_eq!(
        r.json()["Message"],
        "payload size exceeds maximum allowed size (33554432 bytes)"
    );

    let body = vec![b' '; 100 * 1024 * 1024 + 1];
    let r = server.request("POST", "/2023-03-30/functions", &[], &body);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["Code"], "EntityTooLarge");
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("104857600 bytes"));
}

#[test]
fn browser_get_and_unknown_paths_explain_event_functions() {
    let server = Server::start();
    server.create_function(minimal("web"));
    let r = server.request("GET", "/2023-03-30/functions/web/invocations", &[], b"");
    assert_eq!(r.status, 400);
    let body = r.json();
    assert_eq!(body["Code"], "PathNotSupported");
    let message = body["Message"].as_str().unwrap();
    assert!(
        message
            .starts_with("'GET' against '/2023-03-30/functions/web/invocations' is not supported"),
        "{message}"
    );
    assert!(message.contains("HTTP trigger"), "{message}");

    let r = server.request("GET", "/", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["Code"], "NotFound");
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains("Event functions are invoked with POST"));

    let r = server.request("GET", "/favicon.ico", &[], b"");
    assert_eq!(r.status, 404);
}

#[test]
fn invoke_header_and_qualifier_errors_are_invalid_argument() {
    let server = Server::start();
    server.create_function(minimal("hdr"));
    let r = server.invoke_with("hdr", &[("x-fc-log-type", "Everything")], b"");
    assert_invalid(&r, "x-fc-log-type");
    let r = server.request(
        "POST",
        "/2023-03-30/functions/hdr/invocations?qualifier=prod",
        &[],
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["Code"], "AliasNotFound");
    let r = server.request(
        "POST",
        "/2023-03-30/functions/hdr/invocations?qualifier=7",
        &[],
        b"",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["Code"], "VersionNotFound");
}

#[test]
fn fc2_invoke_paths_reach_the_function_and_use_fc2_error_keys() {
    let server = Server::start();
    server.create_function(support::testfn_function("legacy", json!({})));
    for path in [
        "/2016-08-15/services/svc/functions/legacy/invocations",
        "/2016-08-15/services/svc.LATEST/functions/legacy/invocations",
        "/2021-04-06/services/svc/functions/legacy/invocations",
    ] {
        let r = server.request("POST", path, &[], b"headers");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(
            r.text().contains("x-fc-service-name: svc"),
            "{path}: {}",
            r.text()
        );
    }
    let r = server.request(
        "POST",
        "/2021-04-06/services/svc/functions/none/invocations",
        &[],
        b"",
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["ErrorCode"], "FunctionNotFound");
    assert!(r.json()["ErrorMessage"].is_string());
}

#[test]
fn chunked_request_bodies_are_accepted() {
    use std::io::{Read, Write};
    let server = Server::start();
    let body = minimal("chunky").to_string();
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    let mut req = String::from(
        "POST /2023-03-30/functions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for chunk in body.as_bytes().chunks(100) {
        req.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            std::str::from_utf8(chunk).unwrap()
        ));
    }
    req.push_str("0\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

/// Issue 13: a package with a symlink leading out of it, or a zip bomb, was accepted at
/// create and then failed every invoke with 500 (the bomb re-expanding up to 2 GiB each
/// time). Each is now a 400 at create naming the entry; packages with links that stay
/// inside still deploy and run.
#[test]
fn hostile_code_packages_are_refused_at_create_naming_the_entry() {
    use support::zipper::{zip_bomb, zip_with_links};
    let server = Server::start();
    let bootstrap: (&str, &[u8], u32) = ("bootstrap", b"#!/bin/sh\n", 0o755);
    let gib = 1024 * 1024 * 1024u64;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "absolute link",
            zip_with_links(&[bootstrap], &[("etc-passwd", "/etc/passwd")]),
            "symlink 'etc-passwd' -> '/etc/passwd' points outside the package",
        ),
        (
            "climbing link",
            zip_with_links(&[bootstrap], &[("lib/up", "../../../etc")]),
            "symlink 'lib/up' -> '../../../etc' points outside the package",
        ),
        (
            "chained links",
            zip_with_links(&[bootstrap], &[("a/b/s", "../.."), ("out", "a/b/s/..")]),
            "symlink 'out' -> 'a/b/s/..' points outside the package",
        ),
        (
            "declared bomb",
            zip_bomb("huge.bin", 1024 * 1024, 0xF000_0000),
            "entry 'huge.bin': the package declares more than 1073741824 bytes",
        ),
        (
            "lying bomb",
            // The zip reader stops an entry at its declared size; fcx's own count of what
            // really came out stops at the limit.
            zip_bomb("small.bin", gib + 64 * 1024 * 1024, 4096),
            "entry 'small.bin' does not decompress: File is larger than its declared",
        ),
    ];
    for (i, (what, zip, expected)) in cases.iter().enumerate() {
        let mut f = minimal(&format!("hostile{i}"));
        f["code"]["zipFile"] = json!(support::zipper::base64(zip));
        let r = server.post_json("/2023-03-30/functions", &f);
        println!(
            "{what} ({} bytes zipped): {} {}",
            zip.len(),
            r.status,
            r.text()
        );
        assert_invalid(&r, "code.zipFile");
        assert!(r.text().contains(expected), "{what}: {}", r.text());
    }
    let mut ok = support::testfn_function("linked", json!({}));
    let testfn = std::fs::read(support::testfn_bin()).unwrap();
    let zip = zip_with_links(
        &[("bin/testfn", &testfn, 0o755)],
        &[("bootstrap", "bin/testfn"), ("bin/self", "../bin")],
    );
    ok["code"]["zipFile"] = json!(support::zipper::base64(&zip));
    server.create_function(ok);
    assert_eq!(server.invoke("linked", b"echo:inside").text(), "inside");
}
