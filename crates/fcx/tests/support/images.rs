//! Real OCI images in a real registry for the container tests: each test gets its own
//! `docker-registry` on a loopback port and pushes the fixture images it needs.

use fcx_image::build::ImageBuilder;
use fcx_image::RegistryOptions;
use fcx_testkit::registry::TestRegistry;

/// Pushes `image` as `<registry>/<name>` and returns the reference functions use.
pub fn push(registry: &TestRegistry, name: &str, image: &ImageBuilder) -> String {
    let reference = format!("{}/{name}", registry.addr());
    let opts = RegistryOptions {
        credentials: registry.credentials(),
        ..RegistryOptions::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(image.push(&reference, &opts))
        .unwrap_or_else(|e| panic!("pushing {reference}: {e}"));
    reference
}
