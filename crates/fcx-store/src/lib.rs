//! fcx-store
