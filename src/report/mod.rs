//! Reporters: turn the event stream into what people and tools read. They never touch Docker.

pub mod plain;
pub mod terminal;

use crate::events::Event;

pub trait Reporter: Send {
    fn handle(&mut self, event: &Event);
}
