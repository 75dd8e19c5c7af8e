//! Destinations: a record of a finished invocation goes to a function (as an async
//! invocation of it) or, as an fcx extension, to an `http://` URL as a JSON POST.

use bytes::Bytes;
use fcx_model::async_config::destination_function;
use fcx_store::queue::Leased;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;

use crate::AsyncService;

/// FC's destination record.
fn record(
    svc: &AsyncService,
    t: &Leased,
    condition: &str,
    response: &[u8],
    invokes: u32,
) -> Vec<u8> {
    let s = &svc.settings;
    let arn = format!(
        "acs:fc:{}:{}:functions/{}",
        s.region, s.account_id, t.function
    );
    let value = json!({
        "timestamp": svc.now_ms(),
        "requestContext": {
            "requestId": t.request_id,
            "functionArn": arn,
            "condition": condition,
            "approximateInvokeCount": invokes,
        },
        "requestPayload": String::from_utf8_lossy(&t.payload),
        "responseContext": {
            "statusCode": 200,
            "functionError": if condition == "Success" { "" } else { condition },
        },
        "responsePayload": String::from_utf8_lossy(response),
    });
    serde_json::to_vec(&value).unwrap_or_default()
}

/// Delivers the record; returns the task's `destinationStatus`.
pub async fn deliver(
    svc: &AsyncService,
    destination: &str,
    t: &Leased,
    condition: &str,
    response: &[u8],
    invokes: u32,
) -> String {
    let body = record(svc, t, condition, response, invokes);
    let delivered = match destination_function(destination) {
        Some(name) => svc
            .enqueue(
                name,
                "LATEST",
                body,
                uuid::Uuid::new_v4().to_string(),
                None,
                crate::Origin::default(),
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        None => post(destination, body).await,
    };
    match delivered {
        Ok(_) => "Succeeded".into(),
        Err(e) => {
            tracing::warn!(task = %t.task_id, destination, error = %e, "destination delivery failed");
            "Failed".into()
        }
    }
}

async fn post(url: &str, body: Vec<u8>) -> Result<(), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", resp.status()))
    }
}
