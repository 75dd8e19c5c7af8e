//! Fuzzing the timer trigger parsers (issue 13's fuzz list: cron expressions) with proptest:
//! schedules made of cron tokens (numbers, ranges, steps, lists, names, `?`, `L`, `W`, `#`),
//! `CRON_TZ=` prefixes and `@every` durations, and arbitrary timer trigger configs. Whatever
//! comes in, parsing returns a schedule or an error that says what is wrong (never a panic),
//! and a schedule that parses answers its next and latest fires without panicking, each on
//! the right side of the instant asked about (around a DST change, where zones skip hours).
//!
//! Budget: `FCX_FUZZ_CASES` cases per target (CI's default is small), seeded by
//! `FCX_FUZZ_SEED`; `scripts/fuzz.sh` runs 1 M.

use chrono::{DateTime, TimeZone, Utc};
use fcx_model::timer::{parse_schedule, parse_timer_trigger_config};
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "*", "?", "0", "1", "5", "7", "12", "23", "29", "30", "31", "59", "60", "61", "99", "-1",
    "1-5", "5-1", "0-59", "*/0", "*/1", "*/15", "3/7", "1,2,3", ",", "-", "/", "L", "W", "15W",
    "LW", "5L", "MON", "mon-fri", "SUN#2", "1#5", "6#0", "JAN", "dec", "FEB-MAR", "2026", "",
];
const ZONES: &[&str] = &[
    "",
    "CRON_TZ=UTC ",
    "CRON_TZ=Asia/Shanghai ",
    "CRON_TZ=Europe/Berlin ",
    "CRON_TZ=America/St_Johns ",
    "CRON_TZ=Nowhere/City ",
    "CRON_TZ= ",
    "TZ=UTC ",
];
const EVERY: &[&str] = &[
    "@every 1s",
    "@every 0s",
    "@every 1m30s",
    "@every 25h",
    "@every -5s",
    "@every 1.5s",
    "@every 1ms",
    "@every 99999999999h",
    "@every",
    "@every s",
    "@hourly",
    "@daily",
];

fn cron_text() -> impl Strategy<Value = String> {
    (
        prop::sample::select(ZONES),
        prop::collection::vec(prop::sample::select(TOKENS), 0..8),
    )
        .prop_map(|(zone, fields)| format!("{zone}{}", fields.join(" ")))
}

fn schedule_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => cron_text(),
        1 => prop::sample::select(EVERY).prop_map(str::to_owned),
        1 => ".{0,40}",
    ]
}

/// Late March 2026: Europe's clocks jump an hour forward on the 29th at 01:00 UTC.
fn instant(offset_s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap() + chrono::Duration::seconds(offset_s)
}

#[test]
fn schedules_parse_or_are_refused_and_answer_their_fires() {
    fcx_fuzz::run(
        "timer schedules",
        256,
        (schedule_text(), -7_200i64..7_200, 0i64..86_400),
        |(text, offset, back)| {
            match parse_schedule("cronExpression", &text) {
                Err(e) => prop_assert!(!e.to_string().is_empty(), "empty error for {text:?}"),
                Ok(schedule) => {
                    let now = instant(offset);
                    if let Some(next) = schedule.next_after(now) {
                        prop_assert!(next > now, "{text:?}: next {next} not after {now}");
                    }
                    let anchor = now - chrono::Duration::seconds(back);
                    if let Some(latest) = schedule.latest_at_or_before(anchor, now) {
                        prop_assert!(latest <= now, "{text:?}: latest {latest} after {now}");
                    }
                }
            }
            Ok(())
        },
    );
}

#[test]
fn timer_trigger_configs_parse_or_are_refused() {
    fcx_fuzz::run(
        "timer trigger configs",
        256,
        (
            schedule_text(),
            prop_oneof![
                Just("true".to_owned()),
                Just("\"yes\"".to_owned()),
                Just("null".to_owned())
            ],
            ".{0,12}",
        ),
        |(cron, enable, payload)| {
            let docs = [
                serde_json::json!({ "cronExpression": cron, "enable": enable, "payload": payload })
                    .to_string(),
                format!("{{\"cronExpression\":{cron:?},\"enable\":{enable}}}"),
                cron.clone(),
            ];
            for doc in docs {
                if let Err(e) = parse_timer_trigger_config(&doc) {
                    prop_assert!(!e.to_string().is_empty(), "empty error for {doc:?}");
                }
            }
            Ok(())
        },
    );
}
