//! berth runs a GitLab CI pipeline on the local Docker engine, every job in a fresh container.
//!
//! Data flows one way: [`yaml`] text → [`pipeline`] (validated model) → [`plan`] (what runs, in
//! which order) → [`engine`] (scheduler and the life of one job, through [`docker`]) →
//! [`events`] → [`report`] (what people and tools read). [`cli`] wires them together.

pub mod cli;
pub mod diag;
pub mod docker;
pub mod endpoint;
pub mod engine;
pub mod events;
pub mod github;
pub mod lock;
pub mod paths;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod runs;
pub mod state;
pub mod tty;
pub mod vars;
pub mod verify;
pub mod workspace;
pub mod yaml;
