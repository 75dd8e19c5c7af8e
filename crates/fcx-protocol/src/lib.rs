//! fcx-protocol
