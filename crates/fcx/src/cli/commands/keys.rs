//! `fcx keys create|ls`: the AccessKeys of a data dir, read and written in its store directly
//! (no server has to run; a running one sees a new key on its next cache miss).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use anyhow::anyhow;

use crate::cli::args::KeysCommand;

pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    let (KeysCommand::Create { data, .. } | KeysCommand::Ls { data }) = &cmd;
    let dir = &data.data_dir;
    if !dir.exists() {
        // As `fcx server` makes it: code run by functions must not read it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| anyhow!("creating the data dir {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let store = fcx_store::KeyStore::open_for(dir, &data.store)
        .map_err(|e| anyhow!("opening the keys of {}: {e}", dir.display()))?;
    match cmd {
        KeysCommand::Create { description, .. } => {
            let key = store.create(&description)?;
            println!("access_key_id={}", key.id);
            println!("access_key_secret={}", key.secret);
            eprintln!("fcx: the secret is shown only now; store it safely");
        }
        KeysCommand::Ls { .. } => {
            for k in store.list()? {
                if k.description.is_empty() {
                    println!("{}\t{}", k.id, k.created_at);
                } else {
                    println!("{}\t{}\t{}", k.id, k.created_at, k.description);
                }
            }
        }
    }
    Ok(())
}
