//! Writes the fcx node image (`fcx_testkit::images::fcx_node_image`) as an OCI archive:
//! `cargo run -p fcx-testkit --example node_image -- FCX_BINARY OUT.tar [REF]`. Built with
//! fcx's own image builder, no Docker; `scripts/k8s-image.sh` wraps it.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(fcx), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: node_image FCX_BINARY OUT.tar [REF (default fcx-node:latest)]");
        return std::process::ExitCode::from(2);
    };
    let reference = args.get(2).map_or("fcx-node:latest", String::as_str);
    let built = fcx_testkit::images::fcx_node_image(std::path::Path::new(fcx))
        .and_then(|image| image.write_oci_archive(std::path::Path::new(out), reference));
    match built {
        Ok(digest) => {
            println!("{out}: {reference} {digest}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("node_image: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
