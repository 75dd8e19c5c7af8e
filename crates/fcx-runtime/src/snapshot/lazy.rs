//! Lazy pages: `criu lazy-pages` serves a restored instance's memory on first touch through
//! userfaultfd, so a restore of a big image returns once the process tree is back. The
//! daemon runs next to the restore (same work dir, where its socket is) and ends by itself
//! once every page has been handed over.

use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::Criu;

/// A running `criu lazy-pages`, killed on drop if it is still there.
pub(crate) struct LazyPages {
    child: tokio::process::Child,
}

impl LazyPages {
    /// Starts the daemon for `images` and waits (bounded) until it listens.
    pub(crate) async fn start(
        criu: &Criu,
        images: &Path,
        work: &Path,
    ) -> Result<LazyPages, String> {
        let (read_end, write_end) = crate::sys::pipe().map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new(&criu.path);
        cmd.arg("lazy-pages")
            .arg("-D")
            .arg(images)
            .arg("-W")
            .arg(work)
            .args(["-o", "lazy-pages.log", "-v1", "--status-fd", "3"])
            .current_dir(work)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        crate::sys::pass_fd(&mut cmd, std::os::fd::AsRawFd::as_raw_fd(&write_end), 3);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run criu lazy-pages: {e}"))?;
        drop(cmd);
        drop(write_end);
        let mut status =
            tokio::net::unix::pipe::Receiver::from_owned_fd(read_end).map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(10), status.read(&mut byte)).await {
            Ok(Ok(1)) => Ok(LazyPages { child }),
            _ => Err(format!(
                "criu lazy-pages did not start: {}",
                super::criu::log_errors(&work.join("lazy-pages.log"))
            )),
        }
    }

    /// Lets the daemon finish handing pages over in the background.
    pub(crate) fn detach(mut self) {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(600), self.child.wait()).await;
        });
    }
}
