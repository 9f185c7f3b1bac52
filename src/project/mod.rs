//! The host side of a run: what berth reads from and writes into the project directory. The
//! paths a pipeline may name ([`paths`]), the snapshot each job receives ([`workspace`]),
//! `berth.lock` ([`lock`]) and berth's own `.berth/` folder, written without following links
//! ([`state`]).

pub mod checkout;
pub mod git;
pub mod lock;
pub mod paths;
pub mod state;
pub mod workspace;
