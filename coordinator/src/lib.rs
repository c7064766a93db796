//! facetrain coordinator: takes jobs, keeps them in an embedded store, admits workers, runs
//! the synchronous step protocol with gradient reduction, and recovers from lost workers and
//! from its own restarts without a person.

pub mod access;
pub mod cluster;
pub mod conditions;
pub mod coordinator;
pub mod history;
pub mod metrics;
pub mod record;
pub mod reduce;
pub mod run;
pub mod server;
pub mod service;
pub mod store;
