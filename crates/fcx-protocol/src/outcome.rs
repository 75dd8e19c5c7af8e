//! How an instance's answer to `POST /invoke` becomes success or failure ("fcx decisions").

use serde_json::json;

/// Whether an invocation succeeded, as FC judges the instance's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The function answered its invocation successfully.
    Success,
    /// The function reported a failure; the caller gets an `UnhandledInvocationError`.
    Failure,
}

/// `x-fc-status` present: 200 is success, anything else failure. Absent: 2xx/3xx success,
/// every other status failure.
pub fn classify_invoke_response(status: u16, x_fc_status: Option<&str>) -> Outcome {
    match x_fc_status.map(str::trim) {
        Some("200") => Outcome::Success,
        Some(_) => Outcome::Failure,
        None if (200..400).contains(&status) => Outcome::Success,
        None => Outcome::Failure,
    }
}

/// The body of a function error fcx itself detects (timeout, non-zero exit, failed
/// initializer): the built-in runtimes' `{"errorMessage", "errorType"}` shape.
pub fn function_error_body(error_type: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({ "errorMessage": message, "errorType": error_type }))
        .unwrap_or_default()
}

/// `Function time out after N seconds`, the prefix FC users search their logs for.
pub fn timeout_message(seconds: u32) -> String {
    format!("Function time out after {seconds} seconds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_fc_status_wins_over_http_status() {
        assert_eq!(classify_invoke_response(200, Some("404")), Outcome::Failure);
        assert_eq!(classify_invoke_response(500, Some("200")), Outcome::Success);
        assert_eq!(classify_invoke_response(200, Some("500")), Outcome::Failure);
    }

    #[test]
    fn http_status_decides_without_x_fc_status() {
        assert_eq!(classify_invoke_response(200, None), Outcome::Success);
        assert_eq!(classify_invoke_response(302, None), Outcome::Success);
        assert_eq!(classify_invoke_response(404, None), Outcome::Failure);
        assert_eq!(classify_invoke_response(500, None), Outcome::Failure);
    }

    #[test]
    fn function_error_body_is_builtin_runtime_shape() {
        let v: serde_json::Value =
            serde_json::from_slice(&function_error_body("FunctionTimeout", "m")).unwrap();
        assert_eq!(v["errorType"], "FunctionTimeout");
        assert_eq!(v["errorMessage"], "m");
        assert!(timeout_message(3).starts_with("Function time out after 3 seconds"));
    }
}
