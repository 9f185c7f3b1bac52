//! Reporters: turn the event stream into what people and tools read. They never touch Docker.

pub mod json;
pub mod junit;
pub mod plain;
pub mod records;
pub mod terminal;

use crate::events::Event;

pub trait Reporter: Send {
    fn handle(&mut self, event: &Event);
}

/// Several reporters fed the same events, in order.
pub struct Fanout(pub Vec<Box<dyn Reporter>>);

impl Reporter for Fanout {
    fn handle(&mut self, event: &Event) {
        for r in &mut self.0 {
            r.handle(event);
        }
    }
}
