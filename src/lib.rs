//! hookrelay: a self-hosted webhook gateway. See ARCHITECTURE.md for the map.

pub mod api;
pub mod app;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod inbound;
pub mod service;
pub mod signing;
pub mod store;
pub mod telemetry;
