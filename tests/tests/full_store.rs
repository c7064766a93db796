//! A job store on a disk that fills up: an update that needs new space is kept in memory under a
//! `job_store` incident, retried by the supervisor, and reaches the file once space is back; the
//! store works again without reopening the coordinator. Needs root for the tmpfs
//! (FACETRAIN_CHAOS_NO_MOUNT=1 skips it where mounting is impossible).

use facetrain_coordinator::cluster::{Limits, Timing};
use facetrain_coordinator::coordinator::Coordinator;
use facetrain_coordinator::metrics::CoordinatorMetrics;
use facetrain_coordinator::store::JobStore;
use facetrain_proto::incidents::{IncidentCause, Resolver};
use facetrain_tests::chaos::Tmpfs;

const JOB: &str = "name = \"t\"\n[dataset]\ntrain = \"/data/t.csv\"\nvalidate = \"/data/v.csv\"\n[training]\nbatch_size = 10\nmax_steps = 5\n";

#[test]
fn an_update_the_full_disk_refuses_is_kept_and_saved_when_space_is_back() {
    let Some(disk) = Tmpfs::mount_or_skip("8m") else { return };
    let path = disk.dir.path().join("jobs.redb");
    let registry = prometheus::Registry::new();
    let coordinator = Coordinator::open(
        JobStore::open(&path).unwrap(),
        Timing::default(),
        Limits::default(),
        CoordinatorMetrics::new(&registry).unwrap(),
    )
    .unwrap();
    let id = coordinator.submit(JOB, "test", "").unwrap();
    disk.fill("filler");

    // A cancel whose toil record (a long name) needs new pages: accepted, kept in memory.
    let who = "x".repeat(300_000);
    let cancelled = coordinator.cancel(&id, &who, 1.0).unwrap();
    assert_eq!(cancelled.record.state, facetrain_coordinator::record::JobState::Cancelled);
    let job = coordinator.job(&id).unwrap().record;
    let incident = job.incidents.iter().find(|i| i.cause == IncidentCause::JobStore).expect("a job_store incident");
    assert!(incident.detail.contains("No space left on device"), "{}", incident.detail);
    assert!(incident.is_open(), "still open while the disk is full");
    assert!(coordinator.submit(JOB, "test", "").is_err(), "new jobs are refused while nothing can be saved");

    coordinator.supervise();
    let job = coordinator.job(&id).unwrap().record;
    assert!(job.incidents.iter().any(|i| i.cause == IncidentCause::JobStore && i.is_open()));
    std::fs::remove_file(disk.dir.path().join("filler")).unwrap();
    coordinator.supervise();
    let job = coordinator.job(&id).unwrap().record;
    let incident = job.incidents.iter().find(|i| i.cause == IncidentCause::JobStore).unwrap();
    assert_eq!(incident.resolved_by, Some(Resolver::Automation));

    drop(coordinator);
    let saved = JobStore::open(&path).unwrap().all().unwrap();
    let saved = saved.iter().find(|j| j.id == id).unwrap();
    assert_eq!(saved.toil.len(), 1, "the cancel reached the file");
    assert_eq!(saved.incidents.iter().filter(|i| i.resolved_by == Some(Resolver::Automation)).count(), 1);
}
