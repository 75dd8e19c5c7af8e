//! fcx-gateway
