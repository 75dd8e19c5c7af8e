//! fcx-runtime
