//! The text of a pipeline file as berth reads it: a YAML tree whose every node knows its line
//! and column ([`yaml`]), and compiler-style diagnostics that point into it ([`diag`]). Every
//! pipeline format shares them.

pub mod diag;
pub mod yaml;
