//! Fuzzing signature canonicalization with proptest: whatever query a client sends, the
//! canonical query is what the signer computed from its parameters (sorted pairs,
//! RFC 3986 values) however they were put on the wire (form encoding, `+` for spaces,
//! any order); canonical headers are sorted, trimmed and joined as the SDKs do; dates read
//! back as written; nothing panics on hostile input.
//! Budget and seed: `FCX_FUZZ_CASES`, `FCX_FUZZ_SEED` (see `scripts/fuzz.sh`).

use proptest::prelude::*;

/// What a client puts on the wire for a value: form encoding, as Python's `urlencode`.
fn form_encode(s: &str) -> String {
    fcx_sign::percent_encode(s).replace("%20", "+")
}

#[test]
fn canonical_query_is_the_signers_whatever_the_wire_form() {
    let pairs = proptest::collection::vec(("[a-zA-Z0-9_.~-]{1,8}", any::<String>()), 0..6);
    fcx_fuzz::run(
        "canonical query",
        512,
        (pairs, any::<u64>()),
        |(pairs, shuffle)| {
            let mut expected: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (fcx_sign::percent_encode(k), fcx_sign::percent_encode(v)))
                .collect();
            expected.sort();
            let expected: Vec<String> = expected.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut wire: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
                .collect();
            // Any order on the wire.
            let n = wire.len().max(1);
            wire.rotate_left((shuffle as usize) % n);
            let raw = wire.join("&");
            prop_assert_eq!(fcx_sign::canonical_query(Some(&raw)), expected.join("&"));
            Ok(())
        },
    );
}

#[test]
fn hostile_queries_headers_and_dates_never_panic() {
    let input = (
        any::<String>(),
        proptest::collection::vec(any::<Vec<u8>>(), 0..4),
        any::<String>(),
    );
    fcx_fuzz::run(
        "canonicalization of hostile input",
        512,
        input,
        |(query, values, date)| {
            let _ = fcx_sign::canonical_query(Some(&query));
            let canon = fcx_sign::canonical_headers(&["host", "x-acs-date"], |_| {
                values.iter().map(|v| v.as_slice()).collect()
            });
            prop_assert!(canon.starts_with("host:"));
            prop_assert_eq!(canon.matches('\n').count() >= 2, true);
            let _ = fcx_sign::parse_date(&date);
            Ok(())
        },
    );
}

#[test]
fn canonical_headers_are_sorted_trimmed_and_joined() {
    let values = proptest::collection::vec("[ \t]{0,2}[a-zA-Z0-9/=;:-]{0,10}[ \t]{0,2}", 1..4);
    fcx_fuzz::run("canonical headers", 512, values, |values| {
        let canon = fcx_sign::canonical_headers(&["x-acs-test"], |_| {
            values.iter().map(|v| v.as_bytes()).collect()
        });
        let mut trimmed: Vec<&str> = values.iter().map(|v| v.trim()).collect();
        trimmed.sort();
        prop_assert_eq!(canon, format!("x-acs-test:{}\n", trimmed.join(",")));
        Ok(())
    });
}

#[test]
fn dates_read_back_as_written() {
    // 1970 .. 9999.
    fcx_fuzz::run("x-acs-date", 512, 0u64..253_402_300_799, |secs| {
        let text = fcx_sign::format_date(secs);
        prop_assert_eq!(fcx_sign::parse_date(&text), Some(secs as i64));
        Ok(())
    });
}
