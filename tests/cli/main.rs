//! End-to-end tests of berth itself, on Docker only: reading pipelines (bad input, GitLab's
//! keywords and corpus, the fixtures), what people and tools read (output, the live terminal,
//! logs, completions), and the commands and modes beyond a plain run (debug, replay, hermetic
//! runs, Python caches, finding the engine). The core cases that CI also runs on Podman are in
//! `tests/engine`.

#[path = "../common/mod.rs"]
mod common;
mod fixture;
mod github_server;
mod pypi;

mod checkout;
mod completions;
mod debug;
mod engines;
mod fixtures;
mod github;
mod github_actions;
mod github_corpus;
mod github_docker;
mod github_reusable;
mod github_uses;
mod gitlab;
mod gitlab_corpus;
mod gitlab_runner;
mod hermetic;
mod input;
mod logs;
mod output;
mod python;
mod replay;
mod reports;
mod terminal;
mod warm_real;
