//! fcx-model
