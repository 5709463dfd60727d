//! hookrelay: a self-hosted webhook gateway. See ARCHITECTURE.md for the map.

pub mod config;
pub mod domain;
pub mod signing;
pub mod store;
pub mod delivery;
pub mod service;
pub mod api;
pub mod app;
pub mod telemetry;
