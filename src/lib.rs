//! berth runs a CI/CD pipeline on the local Docker engine, every job in a fresh container.
//!
//! Data flows one way, one top-level module per stage of it:
//!
//! - [`source`]: a pipeline file's text as a spanned YAML tree, and diagnostics into it;
//! - [`gitlab`]: GitLab CI's reading of that tree (and [`github`], GitHub Actions'), which
//!   makes the
//! - [`pipeline`]: the validated model, whatever format it came from;
//! - [`plan`]: what runs, in which order;
//! - [`engine`]: the scheduler and the life of one job, reaching containers through its one
//!   seam, [`engine::runtime`], and telling what happens as
//! - [`events`], which the
//! - [`report`]ers turn into what people and tools read, and the run record.
//!
//! [`docker`] implements the engine's seam on Docker's and Podman's API: an adapter above the
//! engine, so that another backend is one more module. Beside the flow: [`project`] is the host side (git facts, paths, the workspace snapshot,
//! `berth.lock`, `.berth/`), [`store`] the run records on disk, [`units`] how sizes and
//! durations are printed. [`cli`] wires them together. A module imports only modules below it
//! in this list's layers; `layers.rs` checks it.

pub mod cli;
pub mod docker;
pub mod engine;
pub mod events;
pub mod github;
pub mod gitlab;
pub mod pipeline;
pub mod plan;
pub mod project;
pub mod report;
pub mod source;
pub mod store;
pub mod units;

#[cfg(test)]
mod layers;
