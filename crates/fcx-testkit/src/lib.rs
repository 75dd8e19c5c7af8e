//! Test-only fixtures shared by the test suites and benchmarks: a real `docker-registry`
//! on a loopback port ([`registry`]), real OCI images built from host files without Docker
//! ([`images`]), and an egress target in a network namespace the test creates itself
//! ([`egress`]), and a real PostgreSQL server with a database per test ([`postgres`]).
//! Everything started here is removed on drop, even when a test fails.
//! [`skip`] runs a `harness = false` test target whose tests the runner reports as ignored,
//! with the reason, on a host that lacks what they need.

pub mod egress;
pub mod images;
pub mod postgres;
pub mod registry;
pub mod skip;
