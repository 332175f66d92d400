//! The one harness of every service's domain tests: given the events a stream holds, when a
//! command decides, then the events it records (and the aggregate moved on by them). Plain
//! functions with no I/O, like the domain they test.

use crate::event::Aggregate;

/// The aggregate the events make.
pub fn given<A: Aggregate>(events: &[A::Event]) -> A {
    let mut aggregate = A::default();
    for event in events {
        aggregate.apply(event);
    }
    aggregate
}

/// Runs `command` on `aggregate` and applies what it recorded; a refusal records nothing (test
/// refusals by calling the command itself).
pub fn when<A: Aggregate, Refused>(
    aggregate: &mut A,
    command: impl FnOnce(&A) -> Result<Vec<A::Event>, Refused>,
) -> Vec<A::Event> {
    let events = command(aggregate).unwrap_or_default();
    for event in &events {
        aggregate.apply(event);
    }
    events
}
