//! The job API as another program uses it: a generated gRPC client against a real coordinator,
//! with no facectl in between to smooth things over.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use facetrain_proto::pb;
use facetrain_proto::pb::job_service_client::JobServiceClient;
use facetrain_tests::{Sandbox, small_dataset, small_job};
use tokio_stream::StreamExt;

const LONG: Duration = Duration::from_secs(120);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

async fn client(sandbox: &Sandbox) -> JobServiceClient<tonic::transport::Channel> {
    JobServiceClient::connect(sandbox.url()).await.unwrap()
}

/// Before: a running job whose only worker was gone sent ~4 events a second in which only
/// `running_seconds` changed.
#[test]
fn a_watch_sends_changes_not_ticks_of_the_running_time() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "idle", &data, 1, 100_000, "");
    sandbox.add_worker("a");
    let id = sandbox.submit(&job);
    sandbox.wait_for_job(&id, LONG, |s| s["step"].as_u64().unwrap_or(0) >= 2);
    sandbox.kill_worker("a");
    let waiting = sandbox.wait_for_job(&id, LONG, |s| s["workers"] == 0);
    assert_eq!(waiting["state"], "running", "{waiting}");
    let message = waiting["message"].as_str().unwrap();
    assert!(message.starts_with("no worker left: waiting for one"), "the job says what it waits for: {waiting}");
    std::thread::sleep(Duration::from_millis(500));

    let events = runtime().block_on(async {
        let mut client = client(&sandbox).await;
        let request = pb::WatchJobRequest { job_id: id.clone() };
        let mut stream = client.watch_job(request).await.unwrap().into_inner();
        let mut events = Vec::new();
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some(event)) = tokio::time::timeout_at(until, stream.next()).await {
            events.push(event.unwrap().job.unwrap());
        }
        events
    });
    // The first event is the job as it is; nothing a reader sees changes while no worker is
    // there (the coordinator's supervisor ticks 12 times in 3 s).
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].id, id);
}

/// Before: `submitted_by` was stored but never returned.
#[test]
fn a_job_says_who_submitted_it() {
    let sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "mine", &data, 1, 10, "");
    let toml = std::fs::read_to_string(&job).unwrap();
    let job = runtime().block_on(async {
        let mut client = client(&sandbox).await;
        let request = pb::SubmitJobRequest { job_toml: toml, submitted_by: "notebook-7".into(), ..Default::default() };
        let id = client.submit_job(request).await.unwrap().into_inner().job_id;
        client.get_job(pb::GetJobRequest { job_id: id }).await.unwrap().into_inner()
    });
    assert_eq!(job.submitted_by, "notebook-7");
    let status = sandbox.status(&job.id);
    assert_eq!(status["submitted_by"], "notebook-7", "{status}");
}

/// Before: relative dataset paths were accepted and resolved against each worker's working
/// directory, wherever that was.
#[test]
fn a_relative_dataset_path_is_refused_at_submit_with_the_key() {
    let sandbox = Sandbox::start();
    let toml = "name = \"rel\"\n[dataset]\ntrain = \"data/train.csv\"\nvalidate = \"/data/validate.csv\"\n";
    let refused = runtime().block_on(async {
        let mut client = client(&sandbox).await;
        let request = pb::SubmitJobRequest { job_toml: toml.into(), submitted_by: "ci".into(), ..Default::default() };
        client.submit_job(request).await.unwrap_err()
    });
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    let message = refused.message();
    assert!(message.contains("`dataset.train` = `data/train.csv` is a relative path"), "{message}");
    assert!(message.contains("absolute path or a URL"), "{message}");
}

/// Before: `facectl submit job.toml` (a bare file name, run from its folder) sent the relative
/// paths as they were, because the file's folder was the empty path, and the coordinator refused them.
#[test]
fn facectl_submit_resolves_paths_against_a_job_file_named_bare() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "bare", &data, 1, 2, "");
    let text = std::fs::read_to_string(&job).unwrap();
    let relative = text.replace(&format!("{}/", sandbox.dir.path().display()), "");
    assert!(relative.contains("train = \"data/train.csv\""), "{relative}");
    std::fs::write(&job, relative).unwrap();
    sandbox.add_worker("a");
    let output = std::process::Command::new(facetrain_tests::binary("facectl"))
        .args(["submit", "bare.toml"])
        .current_dir(sandbox.dir.path())
        .env("FACETRAIN_COORDINATOR", sandbox.url())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let id = String::from_utf8(output.stdout).unwrap().trim().to_string();
    let done = sandbox.wait_for_state(&id, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
}

/// Before: reflection served v1 only (grpcio-reflection's client asks v1alpha and got
/// UNIMPLEMENTED) and listed PeerService, which only workers serve.
#[test]
fn reflection_answers_v1alpha_clients_and_lists_only_what_is_served() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let sandbox = Sandbox::start();
    let names = runtime().block_on(async {
        let channel = tonic::transport::Channel::from_shared(sandbox.url()).unwrap().connect().await.unwrap();
        let mut client = ServerReflectionClient::new(channel);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = client.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
        match responses.next().await.unwrap().unwrap().message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                list.service.into_iter().map(|s| s.name).collect::<Vec<_>>()
            }
            other => panic!("not a service list: {other:?}"),
        }
    });
    assert!(names.iter().any(|n| n == "facetrain.v1.JobService"), "{names:?}");
    assert!(names.iter().any(|n| n == "grpc.health.v1.Health"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("PeerService")), "{names:?}");
}

/// Before: a worker that received SIGTERM ("stopping after the current step") was handed a new
/// job 1.3 s later, then lost by heartbeat (a 5 s stall and an incident).
#[test]
fn a_stopping_worker_leaves_at_once_and_is_handed_no_job() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    sandbox.add_worker("a");
    let first = sandbox.submit(&small_job(sandbox.dir.path(), "first", &data, 1, 3, ""));
    let done = sandbox.wait_for_state(&first, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");

    let pid = sandbox.worker_pid("a").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // Within 2 s, less than the worker's 5 s long poll: the stop must end the poll, not wait it out.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !sandbox.log("worker-a.log").contains("left the coordinator") {
        assert!(std::time::Instant::now() < deadline, "no leave within 2 s:\n{}", sandbox.log("worker-a.log"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = sandbox.submit(&small_job(sandbox.dir.path(), "second", &data, 1, 3, ""));
    std::thread::sleep(Duration::from_millis(500));
    let status = sandbox.status(&second);
    assert_eq!(status["state"], "queued", "{status}");
    assert!(status["message"].as_str().unwrap().contains("0 registered"), "{status}");
    assert!(sandbox.log("coordinator.log").contains("worker left"), "{}", sandbox.log("coordinator.log"));
}

/// Before: `ListJobs` returned every job with its whole job.toml in one message, which failed for
/// good once it passed the client's message limit.
#[test]
fn jobs_are_listed_a_page_at_a_time_without_their_job_toml_unless_asked() {
    let sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let toml = std::fs::read_to_string(small_job(sandbox.dir.path(), "many", &data, 1, 10, "")).unwrap();
    let (pages, listed, full) = runtime().block_on(async {
        let mut client = client(&sandbox).await;
        for _ in 0..5 {
            let request =
                pb::SubmitJobRequest { job_toml: toml.clone(), submitted_by: "ci".into(), ..Default::default() };
            client.submit_job(request).await.unwrap();
        }
        let (mut pages, mut listed, mut token) = (0, Vec::new(), String::new());
        loop {
            let request = pb::ListJobsRequest { page_size: 2, page_token: token, ..Default::default() };
            let response = client.list_jobs(request).await.unwrap().into_inner();
            pages += 1;
            assert!(response.jobs.iter().all(|j| j.job_toml.is_empty()), "the basic view has no job.toml");
            listed.extend(response.jobs.into_iter().map(|j| j.id));
            if response.next_page_token.is_empty() {
                break;
            }
            token = response.next_page_token;
        }
        let request = pb::ListJobsRequest { view: pb::JobView::Full as i32, ..Default::default() };
        let full = client.list_jobs(request).await.unwrap().into_inner().jobs;
        (pages, listed, full)
    });
    assert_eq!((pages, listed.len()), (3, 5), "{listed:?}");
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, listed, "oldest first, each once");
    assert!(full.iter().all(|j| j.job_toml == toml), "the full view has each job.toml");
    let list = sandbox.facectl(&["list", "--output", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(jobs.as_array().map(Vec::len), Some(5), "facectl pages through: {jobs}");
}

/// Before: a retry after UNAVAILABLE or a timeout created a second job.
#[test]
fn a_retried_submission_with_its_request_id_gets_the_same_job() {
    let sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let toml = std::fs::read_to_string(small_job(sandbox.dir.path(), "once", &data, 1, 10, "")).unwrap();
    let (first, again, other, listed) = runtime().block_on(async {
        let mut client = client(&sandbox).await;
        let submit = |job_toml: &str| pb::SubmitJobRequest {
            job_toml: job_toml.into(),
            submitted_by: "ci".into(),
            request_id: "5f0c6a2e-sweep-1".into(),
        };
        let first = client.submit_job(submit(&toml)).await.unwrap().into_inner();
        let again = client.submit_job(submit(&toml)).await.unwrap().into_inner();
        let other = client.submit_job(submit(&toml.replace("max_steps = 10", "max_steps = 11"))).await.unwrap_err();
        let listed = client.list_jobs(pb::ListJobsRequest::default()).await.unwrap().into_inner().jobs;
        (first, again, other, listed)
    });
    assert_eq!(again.job_id, first.job_id, "the retry gets the first call's job");
    assert_eq!(first.job.as_ref().map(|j| j.id.as_str()), Some(first.job_id.as_str()), "the response has the job");
    assert_eq!(listed.len(), 1, "one job, not two: {listed:?}");
    assert_eq!(other.code(), tonic::Code::InvalidArgument, "{other:?}");
    assert!(other.message().contains("already used for another job.toml"), "{}", other.message());
}

/// Before: no call deleted a job, so the list and the per-job metric series only grew.
#[test]
fn an_ended_job_can_be_deleted_for_good_and_a_running_one_cannot() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    sandbox.add_worker("a");
    let long = sandbox.submit(&small_job(sandbox.dir.path(), "long", &data, 1, 100_000, ""));
    sandbox.wait_for_job(&long, LONG, |s| s["step"].as_u64().unwrap_or(0) >= 1);
    let refused = runtime().block_on(async {
        let mut client = client(&sandbox).await;
        client.delete_job(pb::DeleteJobRequest { job_id: long.clone() }).await.unwrap_err()
    });
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("cancel it before deleting it"), "{refused:?}");

    let cancelled = sandbox.facectl(&["cancel", &long, "--hands-on-seconds", "60", "--coordinator", &sandbox.url()]);
    assert!(cancelled.status.success(), "{}", String::from_utf8_lossy(&cancelled.stderr));
    let series = format!("facetrain_job_step{{job_id=\"{long}\"}}");
    assert!(facetrain_tests::scrape(&sandbox.metrics_address).contains(&series), "the job has series before");
    let deleted = sandbox.facectl(&["delete", &long, "--coordinator", &sandbox.url()]);
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));

    let metrics = facetrain_tests::scrape(&sandbox.metrics_address);
    assert!(!metrics.contains(long.as_str()), "no series of a deleted job is left:\n{metrics}");
    assert!(
        metrics.contains("facetrain_toil_seconds_total{kind=\"cancel\"} 60"),
        "the toil totals keep a deleted job's hands-on time (a counter must not go back):\n{metrics}"
    );
    // Gone from the store too: a restarted coordinator does not bring it back.
    sandbox.restart_coordinator();
    let missing = runtime().block_on(async {
        let mut client = client(&sandbox).await;
        let listed = client.list_jobs(pb::ListJobsRequest::default()).await.unwrap().into_inner();
        assert!(listed.jobs.iter().all(|j| j.id != long), "{listed:?}");
        client.get_job(pb::GetJobRequest { job_id: long.clone() }).await.unwrap_err()
    });
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
}

/// Before: an INVALID_ARGUMENT named the field only in its text.
#[test]
fn an_invalid_request_names_the_field_in_bad_request_details() {
    use tonic_types::StatusExt;

    let sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let toml = std::fs::read_to_string(small_job(sandbox.dir.path(), "queued", &data, 1, 10, "")).unwrap();
    let fields = runtime().block_on(async {
        let mut client = client(&sandbox).await;
        let bad_toml = pb::SubmitJobRequest { job_toml: "name = 3".into(), ..Default::default() };
        let id = client
            .submit_job(pb::SubmitJobRequest { job_toml: toml, ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .job_id;
        let month = prost_types::Duration { seconds: 30 * 86_400, nanos: 0 };
        let bad_cancel = pb::CancelJobRequest { job_id: id, hands_on: Some(month), ..Default::default() };
        let bad_page = pb::ListJobsRequest { page_size: -1, ..Default::default() };
        let errors = [
            client.submit_job(bad_toml).await.unwrap_err(),
            client.cancel_job(bad_cancel).await.unwrap_err(),
            client.list_jobs(bad_page).await.unwrap_err(),
        ];
        errors
            .iter()
            .map(|status| {
                assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
                let details = status.get_error_details();
                let violations = details.bad_request().expect("a BadRequest detail").field_violations.clone();
                assert_eq!(violations.len(), 1, "{violations:?}");
                assert_eq!(violations[0].description, status.message());
                violations[0].field.clone()
            })
            .collect::<Vec<_>>()
    });
    assert_eq!(fields, ["job_toml", "hands_on", "page_size"]);
}

/// An integrator's view of the whole API: examples/python/client.py, with stubs generated
/// from the protos by grpcio-tools, against a real coordinator and worker (submit and its retry,
/// watch to the end, list by pages and by state, cancel with an invalid hands-on time refused,
/// delete). Python's grpc is installed by `make tools`; without it the test fails.
#[test]
fn the_python_client_example_runs_against_a_real_coordinator() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = repo.join(".venv-test/bin/python");
    assert!(python.exists(), "{} missing: run `make tools`", python.display());
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "from-python", &data, 1, 6, "");
    sandbox.add_worker("a");
    let stubs = sandbox.dir.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let generated = std::process::Command::new(&python)
        .args(["-m", "grpc_tools.protoc", "-I", "proto/proto"])
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .arg("proto/proto/facetrain/v1/jobs.proto")
        .current_dir(&repo)
        .output()
        .unwrap();
    assert!(generated.status.success(), "protoc: {}", String::from_utf8_lossy(&generated.stderr));
    let address = sandbox.url().trim_start_matches("http://").to_string();
    let run = std::process::Command::new(&python)
        .arg(repo.join("examples/python/client.py"))
        .args(["--address", &address, "--job"])
        .arg(&job)
        .env("PYTHONPATH", &stubs)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("python client: every call behaved as documented"), "{stdout}");
    assert!(stdout.contains("succeeded after 6 steps"), "{stdout}");
}
