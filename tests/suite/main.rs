//! The one integration-test binary: every suite links once.

// In the suite a panic is a failed assertion, which is what unwrap() means here.
#![allow(clippy::unwrap_used)]

mod agent;
mod auth;
mod cancel;
mod cluster;
mod coder;
mod confinement;
mod conformance;
mod definitions;
mod deploy;
mod dispatch;
mod e2e;
mod events;
mod forge;
mod gateway;
mod gitlab;
mod hostile;
mod intake;
mod invalid_input;
mod isolation;
mod kubernetes;
mod langfuse;
mod limits;
mod openai;
mod outage;
mod principals;
mod profiles;
mod python;
mod resilience;
mod security;
mod tools;
mod webhooks;
