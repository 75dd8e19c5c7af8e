//! What every handler shares.

use std::sync::Arc;

use fcx_model::Function;
use fcx_scheduler::{Deployed, Scheduler};
use fcx_store::{CodeStore, Store};

pub struct App {
    pub store: Arc<dyn Store>,
    pub code: CodeStore,
    pub scheduler: Arc<Scheduler>,
    pub asyncs: Arc<fcx_async::AsyncService>,
    /// Aliases, for qualifier resolution on the invoke path.
    pub aliases: crate::versions::AliasCache,
    /// `<data dir>/logs`: one directory per function, one file per instance.
    pub log_dir: std::path::PathBuf,
    pub region: String,
    pub account_id: String,
}

impl App {
    /// The stored package of `function` (`None` for image-based functions). Records written
    /// before `codeSha256` existed kept the SHA-256 in `codeChecksum`; they are read as such.
    pub fn code_zip(&self, function: &mut Function) -> Option<std::path::PathBuf> {
        if function.code_sha256.is_empty() && function.code_checksum.len() == 64 {
            function.code_sha256 = function.code_checksum.clone();
        }
        (!function.code_sha256.is_empty() && !function.is_custom_container())
            .then(|| self.code.path(&function.code_sha256))
    }

    /// Hands a stored function to the scheduler, with its code package's path.
    pub fn deploy(&self, mut function: Function) {
        let code_zip = self.code_zip(&mut function);
        self.scheduler.deploy(Deployed {
            function,
            version_id: None,
            code_zip,
        });
    }
}

/// A fresh request id (FC's are UUID-shaped).
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
