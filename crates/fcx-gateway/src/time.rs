//! RFC 3339 timestamps, as the control plane writes them (the auth checks name dates in
//! their errors).

pub use fcx_control::time::format_rfc3339;
