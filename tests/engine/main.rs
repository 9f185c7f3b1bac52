//! The core of a run against a real engine: jobs, artifacts, services, interrupts, caches, and
//! what an untrusted repository or a shared engine must not be able to do. These are the cases
//! CI runs twice, on Docker and on Podman's Docker-compatible API (`.ci/run`), so they test the
//! engine seam rather than berth's reading or output; those live in `tests/cli`.

mod child;
#[path = "../common/mod.rs"]
mod common;

mod ahead;
mod artifacts;
mod caches;
mod interrupt;
mod run;
mod scripts;
mod services;
mod steps;
mod trust;
