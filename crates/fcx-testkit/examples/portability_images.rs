//! Writes the test images the portability smoke suite (`scripts/portability.sh`) imports
//! with `fcx image import`, as `docker save` archives in the directory given:
//! `busybox-web.tar` (web-server mode: each request body is a shell script run inside the
//! container) and `busybox-event.tar` (non-web-server mode: echoes the event).
//! Run: `cargo run --release -p fcx-testkit --example portability_images -- DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use fcx_testkit::images;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: portability_images DIR");
        return ExitCode::from(2);
    };
    let built = std::fs::create_dir_all(&dir).and_then(|()| {
        let web = images::busybox_web_image("")?;
        web.write_docker_archive(&dir.join("busybox-web.tar"), "portability/busybox-web:v1")?;
        let event = images::busybox_event_image()?;
        event.write_docker_archive(
            &dir.join("busybox-event.tar"),
            "portability/busybox-event:v1",
        )?;
        Ok(())
    });
    match built {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "portability_images: writing images into {}: {e}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}
