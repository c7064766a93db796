//! A job store on a disk that fills up: an update that needs new space is kept in memory under a
//! `job_store` incident, retried by the supervisor, and reaches the file once space is back; the
//! store works again without reopening the coordinator. Needs root for the tmpfs
//! (FACETRAIN_CHAOS_NO_MOUNT=1 skips it where mounting is impossible).

use std::io::Write;
use std::path::Path;
use std::process::Command;

use facetrain_coordinator::coordinator::{Coordinator, Timing};
use facetrain_coordinator::metrics::CoordinatorMetrics;
use facetrain_coordinator::store::JobStore;

const JOB: &str =
    "name = \"t\"\n[dataset]\ntrain = \"t.csv\"\nvalidate = \"v.csv\"\n[training]\nbatch_size = 10\nmax_steps = 5\n";

struct Tmpfs(tempfile::TempDir);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

fn mount_tmpfs() -> Option<Tmpfs> {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"]).arg(dir.path()).output();
    match mounted {
        Ok(output) if output.status.success() => Some(Tmpfs(dir)),
        _ if std::env::var("FACETRAIN_CHAOS_NO_MOUNT").is_ok() => None,
        other => panic!("cannot mount a tmpfs ({other:?}): run as root, or set FACETRAIN_CHAOS_NO_MOUNT=1 to skip"),
    }
}

fn fill(dir: &Path) {
    let mut file = std::fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while file.write_all(&chunk).is_ok() {}
}

#[test]
fn an_update_the_full_disk_refuses_is_kept_and_saved_when_space_is_back() {
    let Some(disk) = mount_tmpfs() else { return };
    let path = disk.0.path().join("jobs.redb");
    let registry = prometheus::Registry::new();
    let coordinator = Coordinator::open(
        JobStore::open(&path).unwrap(),
        Timing::default(),
        CoordinatorMetrics::new(&registry).unwrap(),
    )
    .unwrap();
    let id = coordinator.submit(JOB, "test").unwrap();
    fill(disk.0.path());

    // A cancel whose toil record (a long name) needs new pages: accepted, kept in memory.
    let who = "x".repeat(300_000);
    let cancelled = coordinator.cancel(&id, &who, 1.0).unwrap();
    assert_eq!(cancelled.state, facetrain_proto::pb::JobState::Cancelled as i32);
    let job = coordinator.job(&id).unwrap();
    let incident = job.incidents.iter().find(|i| i.cause == "job_store").expect("a job_store incident");
    assert!(incident.detail.contains("No space left on device"), "{}", incident.detail);
    assert!(incident.resolved_by.is_empty(), "still open while the disk is full");
    assert!(coordinator.submit(JOB, "test").is_err(), "new jobs are refused while nothing can be saved");

    coordinator.supervise();
    assert!(coordinator.job(&id).unwrap().incidents.iter().any(|i| i.cause == "job_store" && i.resolved_by.is_empty()));
    std::fs::remove_file(disk.0.path().join("filler")).unwrap();
    coordinator.supervise();
    let job = coordinator.job(&id).unwrap();
    let incident = job.incidents.iter().find(|i| i.cause == "job_store").unwrap();
    assert_eq!(incident.resolved_by, "automation");

    drop(coordinator);
    let saved = JobStore::open(&path).unwrap().all().unwrap();
    let saved = saved.iter().find(|j| j.id == id).unwrap();
    assert_eq!(saved.toil.len(), 1, "the cancel reached the file");
    assert_eq!(saved.incidents.iter().filter(|i| i.resolved_by == "automation").count(), 1);
}
