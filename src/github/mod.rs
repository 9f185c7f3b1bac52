//! GitHub Actions' reading of a workflow: the expression language ([`expr`]), the workflow
//! file as a typed model ([`workflow`]), filter patterns ([`pattern`]), whether an event
//! triggers a workflow ([`trigger`]), matrix expansion with check-run names ([`matrix`]),
//! and running it: the run's facts and contexts ([`run`]), the workflow made a
//! [`crate::pipeline::Pipeline`] ([`lower`]), a job's steps behind the engine's seam
//! ([`steps`]) with the files steps write ([`file_commands`]), the built-in
//! `actions/setup-python` ([`setup_python`]), and the commands steps print
//! ([`workflow_commands`]).

pub mod expr;
pub mod file_commands;
pub mod lower;
pub mod matrix;
pub mod pattern;
pub mod run;
pub mod setup_python;
pub mod steps;
pub mod trigger;
pub mod workflow;
pub mod workflow_commands;
