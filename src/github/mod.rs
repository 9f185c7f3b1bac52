//! GitHub Actions' reading of a workflow.

pub mod expr;
