//! wxgate's integration tests: one binary, one link step.
//!
//! Everything a user sees goes through the real server on a free loopback
//! port; router-only behaviour goes through `oneshot`.

mod cli;
mod delivery;
mod errors;
mod fixtures;
mod helpers;
mod operator;
mod props;
mod vectors;
mod webhook;
