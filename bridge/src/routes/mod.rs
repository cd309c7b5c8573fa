//! HTTP handlers. Thin: parse, call the stores, shape the answer.

pub mod events;
pub mod health;
pub mod tasks;
