//! The gRPC layer: thin adapters from requests to [`crate::coordinator::Coordinator`].

pub mod jobs;
pub mod workers;
