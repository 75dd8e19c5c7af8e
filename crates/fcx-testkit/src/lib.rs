//! Test-only fixtures shared by the test suites and benchmarks: a real `docker-registry`
//! on a loopback port ([`registry`]), real OCI images built from host files without Docker
//! ([`images`]), and an egress target in a network namespace the test creates itself
//! ([`egress`]). Everything started here is removed on drop, even when a test fails.

pub mod egress;
pub mod images;
pub mod registry;
