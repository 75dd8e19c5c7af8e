//! Fuzzing the wire contract with proptest: the `x-fc-status` mapping against its rule,
//! the two-valued FC headers, error bodies (always valid JSON that reads back, whatever
//! the message), and log tails (a suffix, within the limit, never starting mid-character).
//! Budget and seed: `FCX_FUZZ_CASES`, `FCX_FUZZ_SEED` (see `scripts/fuzz.sh`).

use fcx_protocol::{headers, logs, outcome, ApiFlavor, ErrorCode, FcError, Outcome};
use proptest::prelude::*;

#[test]
fn x_fc_status_mapping_follows_its_rule() {
    let status = proptest::option::of(prop_oneof![
        any::<String>(),
        proptest::sample::select(vec![" 200 ", "200", "404", "2OO", "200\t"])
            .prop_map(str::to_owned),
    ]);
    fcx_fuzz::run(
        "x-fc-status mapping",
        512,
        (any::<u16>(), status),
        |(code, x_fc_status)| {
            let got = outcome::classify_invoke_response(code, x_fc_status.as_deref());
            let expected = match x_fc_status.as_deref().map(str::trim) {
                Some(v) => v == "200",
                None => (200..400).contains(&code),
            };
            prop_assert_eq!(got == Outcome::Success, expected);
            Ok(())
        },
    );
}

#[test]
fn two_valued_headers_take_exactly_their_spellings() {
    let value = proptest::option::of(prop_oneof![
        any::<String>(),
        proptest::sample::select(vec!["Async", "async", "Sync", "sync", "ASYNC", " Async"])
            .prop_map(str::to_owned),
    ]);
    fcx_fuzz::run("FC headers", 512, value, |v| {
        let got = headers::switch(v.as_deref(), &["Async", "async"], &["Sync", "sync"]);
        let expected = match v.as_deref() {
            None | Some("Sync") | Some("sync") => Some(false),
            Some("Async") | Some("async") => Some(true),
            Some(_) => None,
        };
        prop_assert_eq!(got, expected);
        Ok(())
    });
}

#[test]
fn error_bodies_are_json_that_reads_back() {
    let codes = proptest::sample::select(vec![
        ErrorCode::InvalidArgument,
        ErrorCode::FunctionNotFound,
        ErrorCode::ProcessExited,
        ErrorCode::ResourceExhausted,
        ErrorCode::InternalServerError,
    ]);
    let input = (
        codes,
        any::<String>(),
        any::<String>(),
        any::<String>(),
        any::<bool>(),
    );
    fcx_fuzz::run(
        "FC error bodies",
        512,
        input,
        |(code, message, detail, rid, fc2)| {
            let e = FcError::new(code, message.clone()).with_detail("Logs", detail.clone());
            let (flavor, key) = if fc2 {
                (ApiFlavor::Fc2, "ErrorMessage")
            } else {
                (ApiFlavor::Fc3, "Message")
            };
            let body: serde_json::Value =
                serde_json::from_slice(&e.body(flavor, &rid)).expect("valid JSON");
            prop_assert_eq!(body[key].as_str(), Some(message.as_str()));
            prop_assert_eq!(body["RequestId"].as_str(), Some(rid.as_str()));
            prop_assert_eq!(body["Logs"].as_str(), Some(detail.as_str()));
            Ok(())
        },
    );
}

#[test]
fn log_tails_are_suffixes_within_the_limit() {
    let input = (
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        0usize..80,
    );
    fcx_fuzz::run("log tails", 512, input, |(text, raw, max)| {
        for log in [text.as_bytes(), &raw[..]] {
            let t = logs::tail(log, max);
            prop_assert!(log.ends_with(t));
            if log.len() <= max {
                prop_assert_eq!(t, log);
            } else {
                prop_assert!(t.len() <= max);
            }
            if std::str::from_utf8(log).is_ok() {
                prop_assert!(std::str::from_utf8(t).is_ok());
            }
        }
        Ok(())
    });
}
