//! berth runs a GitLab CI pipeline on the local Docker engine, every job in a fresh container.
//!
//! Data flows one way: [`yaml`] text → [`pipeline`] (validated model) → [`plan`] (what runs, in
//! which order) → [`engine`] (scheduler and the life of one job, reaching containers through its
//! [`engine::runtime`] seam, which [`docker`] implements) →
//! [`events`] → [`report`] (what people and tools read). [`cli`] wires them together.

pub mod cli;
pub mod docker;
pub mod engine;
pub mod events;
pub mod gitlab;
pub mod pipeline;
pub mod plan;
pub mod project;
pub mod report;
pub mod source;
pub mod store;
pub mod units;
