//! The backends a scheduler runs instances on, keyed by kind, and which kind a function runs
//! on: a code package on `process`, a `customContainerConfig.image` on `oci`.

use std::sync::Arc;

use fcx_runtime::{Backend, BackendKind};

use crate::{Deployed, SchedulerError};

/// A small registry: at most one backend per kind.
#[derive(Default, Clone)]
pub struct Backends {
    all: Vec<Arc<dyn Backend>>,
}

impl Backends {
    /// An empty registry: functions needing any backend get `BackendUnavailable`.
    pub fn new() -> Backends {
        Backends::default()
    }

    /// Adds `backend` under its kind, replacing one of the same kind.
    pub fn with(mut self, backend: Arc<dyn Backend>) -> Backends {
        self.all.retain(|b| b.kind() != backend.kind());
        self.all.push(backend);
        self
    }

    /// The backend of `kind`, if this server runs one.
    pub fn get(&self, kind: BackendKind) -> Option<&Arc<dyn Backend>> {
        self.all.iter().find(|b| b.kind() == kind)
    }

    /// Every backend (for reaping and shutdown).
    pub fn all(&self) -> &[Arc<dyn Backend>] {
        &self.all
    }

    /// The backend `deployed` runs on, or why there is none.
    pub fn for_function(&self, deployed: &Deployed) -> Result<&Arc<dyn Backend>, SchedulerError> {
        let kind = kind_of(deployed);
        self.get(kind).ok_or_else(|| {
            let f = &deployed.function;
            SchedulerError::BackendUnavailable {
                function: f.function_name.clone(),
                image: f
                    .custom_container_config
                    .as_ref()
                    .map(|c| c.image.clone())
                    .unwrap_or_default(),
                kind,
            }
        })
    }
}

/// A stored code package runs as a process; otherwise the function's image runs as a
/// container.
pub fn kind_of(deployed: &Deployed) -> BackendKind {
    if deployed.code_zip.is_some() || deployed.function.custom_container_config.is_none() {
        BackendKind::Process
    } else {
        BackendKind::Oci
    }
}
