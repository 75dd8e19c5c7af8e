//! Timer triggers fire (issue 11 point 5) on the real server: `@every 1s` over a bounded
//! window (fires counted by their `triggerTime`, ±1), disabling stops it, enabling resumes
//! it, and a restart after a few missed seconds makes at most one catch-up fire, not a burst.
//! Each fire is a durable async invocation with FC's event and its own request id.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use support::Server;

/// One recorded fire: its request id and FC's event.
struct Fire {
    request_id: String,
    event: Value,
    time: DateTime<Utc>,
}

fn fires(path: &Path) -> Vec<Fire> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (rid, body) = l.split_once(' ')?;
            let event: Value = serde_json::from_str(body).ok()?;
            let time = DateTime::parse_from_rfc3339(event["triggerTime"].as_str()?)
                .ok()?
                .with_timezone(&Utc);
            Some(Fire {
                request_id: rid.to_owned(),
                event,
                time,
            })
        })
        .collect()
}

/// Waits (bounded) until a fire scheduled at or after `at` has run.
fn wait_for_fire_at(path: &Path, at: DateTime<Utc>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fires(path).iter().any(|f| f.time >= at) {
        assert!(
            Instant::now() < deadline,
            "{what}: no fire at or after {at}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn count_in(path: &Path, from: DateTime<Utc>, to: DateTime<Utc>) -> usize {
    fires(path)
        .iter()
        .filter(|f| f.time >= from && f.time < to)
        .count()
}

fn set_enable(server: &Server, enable: bool) {
    let config = json!({"cronExpression": "@every 1s", "payload": "tick", "enable": enable});
    let r = server.put_json(
        "/2023-03-30/functions/ticker/triggers/tick",
        &json!({"triggerConfig": config.to_string()}),
    );
    assert_eq!(r.status, 200, "UpdateTrigger: {}", r.text());
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

#[test]
fn every_second_fires_in_bounds_stops_resumes_and_survives_a_restart_without_a_burst() {
    let mut server = Server::start();
    let scratch = support::scratch_dir("timer");
    let record = scratch.path().join("fires");
    server.create_function(support::testfn_function(
        "ticker",
        json!({"TESTFN_BODIES": record.display().to_string()}),
    ));
    let config = json!({"cronExpression": "@every 1s", "payload": "tick", "enable": true});
    let r = server.post_json(
        "/2023-03-30/functions/ticker/triggers",
        &json!({"triggerName": "tick", "triggerType": "timer", "triggerConfig": config.to_string()}),
    );
    assert_eq!(r.status, 200, "CreateTrigger: {}", r.text());

    // A 5-second window after the first fire holds 5 fires, ±1.
    wait_for_fire_at(&record, DateTime::<Utc>::MIN_UTC, "first fire");
    let first = fires(&record)[0].time;
    let (from, to) = (first + secs(1), first + secs(6));
    wait_for_fire_at(&record, to, "window end");
    let n = count_in(&record, from, to);
    assert!(
        (4..=6).contains(&n),
        "{n} fires in a 5 s window of @every 1s"
    );
    // FC's event, and a request id per fire (each is an async invocation of its own).
    let all = fires(&record);
    assert_eq!(all[0].event["triggerName"], "tick");
    assert_eq!(all[0].event["payload"], "tick");
    let mut ids: Vec<&str> = all.iter().map(|f| f.request_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "request ids are unique");
    assert!(
        all.iter().all(|f| f.request_id.len() >= 32),
        "x-fc-request-id on every fire"
    );

    // Disabled: no more fires (one already queued may still run).
    set_enable(&server, false);
    let disabled_at = Utc::now();
    std::thread::sleep(Duration::from_secs(3));
    let after = count_in(&record, disabled_at, disabled_at + secs(3600));
    assert!(after <= 1, "{after} fires after disabling");

    // Enabled again: fires resume, without making up for the disabled seconds.
    set_enable(&server, true);
    let enabled_at = Utc::now();
    wait_for_fire_at(&record, enabled_at + secs(2), "fires after enabling");
    let gap = count_in(&record, disabled_at + secs(1), enabled_at);
    assert!(gap <= 1, "{gap} fires made up for the disabled time");

    // A restart after 3 s down: the schedule resumes with at most one catch-up fire.
    let stopped_at = Utc::now();
    server.restart_after(Duration::from_secs(3));
    let up_at = Utc::now();
    wait_for_fire_at(&record, up_at + secs(4), "fires after the restart");
    let missed = count_in(&record, stopped_at + secs(1), up_at);
    assert!(
        missed <= 1,
        "{missed} fires replayed for the time the server was down"
    );
    let resumed = count_in(&record, stopped_at + secs(1), up_at + secs(4));
    assert!(
        resumed <= 6,
        "{resumed} fires in the 4 s after the restart: a burst"
    );
    assert!(
        resumed >= 3,
        "only {resumed} fires in the 4 s after the restart"
    );
}
