//! Serving: the job and worker services behind the access policy, gRPC health and reflection,
//! on a listener the caller bound (tests pass 127.0.0.1:0), over TLS when configured, until
//! `shutdown` resolves.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use facetrain_proto::internal::worker_service_server::WorkerServiceServer;
use facetrain_proto::pb::job_service_server::JobServiceServer;
use facetrain_proto::{FILE_DESCRIPTOR_SET, MAX_MESSAGE_BYTES};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::ServerTlsConfig;
use tracing::info;

use crate::access::{AccessPolicy, Submissions, SubmitLimit};
use crate::cluster::{Limits, Timing};
use crate::coordinator::{Coordinator, Shared};
use crate::metrics::CoordinatorMetrics;
use crate::service::jobs::JobApi;
use crate::service::workers::WorkerApi;
use crate::store::JobStore;

/// How often lost workers and deadlines are checked.
const SUPERVISE_EVERY: Duration = Duration::from_millis(250);

/// The services a coordinator serves, as reflection lists them.
pub const SERVED: [&str; 5] = [
    "facetrain.v1.JobService",
    "facetrain.internal.v1.WorkerService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// How the API is protected: TLS (`None`: plaintext), who may call what, and how fast one caller
/// may submit jobs.
#[derive(Clone, Debug, Default)]
pub struct Security {
    pub tls: Option<ServerTlsConfig>,
    pub access: AccessPolicy,
    pub submit_limit: SubmitLimit,
}

pub async fn run(
    listener: TcpListener,
    coordinator: Shared,
    security: Security,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (health, health_service) = tonic_health::server::health_reporter();
    // Reflection in both versions (grpcurl speaks v1, grpcio's and older clients v1alpha), listing
    // only the services this process serves (the ring's PeerService lives in the same proto
    // files but is served by workers).
    let reflection = || {
        SERVED.iter().fold(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
            |builder, service| builder.with_service_name(*service),
        )
    };
    let (reflection, reflection_v1alpha) = (reflection().build_v1()?, reflection().build_v1alpha()?);
    let submissions = Arc::new(Mutex::new(Submissions::new(security.submit_limit)));
    let jobs = JobServiceServer::new(JobApi { coordinator: coordinator.clone(), submissions })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let jobs = InterceptedService::new(jobs, security.access.jobs());
    let workers = WorkerServiceServer::new(WorkerApi { coordinator: coordinator.clone() })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let workers = InterceptedService::new(workers, security.access.workers());

    let supervisor = tokio::spawn({
        let coordinator = coordinator.clone();
        async move {
            let mut tick = tokio::time::interval(SUPERVISE_EVERY);
            loop {
                tick.tick().await;
                coordinator.supervise();
            }
        }
    });
    health.set_serving::<JobServiceServer<JobApi>>().await;
    health.set_serving::<WorkerServiceServer<WorkerApi>>().await;
    info!(address = %listener.local_addr()?, tls = security.tls.is_some(), open = security.access.is_open(), "coordinator serving");
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = security.tls {
        server = server.tls_config(tls)?;
    }
    let result = server
        .timeout(Duration::from_secs(60))
        .initial_stream_window_size(facetrain_proto::STREAM_WINDOW_BYTES)
        .initial_connection_window_size(facetrain_proto::CONNECTION_WINDOW_BYTES)
        .max_frame_size(facetrain_proto::MAX_FRAME_BYTES)
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(jobs)
        .add_service(workers)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await;
    supervisor.abort();
    result?;
    Ok(())
}

/// A coordinator for one process's own use (`facectl local` with several workers): a job store
/// in `scratch`, default timing, no metrics endpoint, and an open plaintext API, which is why
/// `listener` must be on loopback. Serves until `shutdown` resolves.
pub async fn embedded(
    listener: TcpListener,
    scratch: &std::path::Path,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        listener.local_addr()?.ip().is_loopback(),
        "an embedded coordinator serves an open API: bind it to loopback"
    );
    let metrics = CoordinatorMetrics::new(&prometheus::Registry::new())?;
    let store = JobStore::open(&scratch.join("jobs.redb"))?;
    let coordinator = Coordinator::open(store, Timing::default(), Limits::default(), metrics)?;
    tracing::info!(address = %listener.local_addr()?, "embedded coordinator: plaintext gRPC on loopback");
    run(listener, coordinator, Security::default(), shutdown).await
}
