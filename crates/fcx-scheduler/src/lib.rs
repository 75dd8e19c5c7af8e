//! fcx-scheduler
