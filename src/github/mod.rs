//! GitHub Actions' reading of a workflow: the expression language ([`expr`]), the workflow
//! file as a typed model ([`workflow`]), filter patterns ([`pattern`]), whether an event
//! triggers a workflow ([`trigger`]) and matrix expansion with check-run names ([`matrix`]).

pub mod expr;
pub mod matrix;
pub mod pattern;
pub mod trigger;
pub mod workflow;
