//! HTTP handlers. Thin: parse, call the stores, shape the answer.

pub mod audit;
pub mod compat;
pub mod events;
pub mod health;
pub mod openai;
pub mod tasks;
pub mod usage;
