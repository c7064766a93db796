//! facectl's exit codes, one per outcome a script handles differently (facectl/src/exit.rs):
//! 0 done, 1 failed (a refused request, bad input, a watched job that failed), 2 usage,
//! 3 coordinator unreachable, 4 not authenticated.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use facetrain_tests::{Sandbox, binary};

fn facectl(args: &[&str]) -> Output {
    Command::new(binary("facectl")).args(args).env_remove("FACETRAIN_TOKEN").output().unwrap()
}

fn code(output: &Output) -> (Option<i32>, String) {
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn each_kind_of_outcome_has_its_exit_code() {
    // Usage: clap's 2, before anything runs.
    let (status, stderr) = code(&facectl(&["status"]));
    assert_eq!(status, Some(2), "{stderr}");

    // Unreachable: a port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let url = format!("http://{closed}");
    let (status, stderr) = code(&facectl(&["status", "j-1", "--coordinator", &url, "--timeout", "3"]));
    assert_eq!(status, Some(3), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");

    // Refused by the coordinator: an unknown job is the command failing, 1.
    let sandbox = Sandbox::start();
    let (status, stderr) = code(&facectl(&["status", "j-unknown", "--coordinator", &sandbox.url()]));
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("no job"), "{stderr}");

    // Not authenticated: no token for a coordinator that wants one.
    let secure = Sandbox::start_secure();
    let ca = secure.certs().join("ca.pem");
    let (status, stderr) = code(&facectl(&["list", "--coordinator", &secure.url(), "--tls-ca", ca.to_str().unwrap()]));
    assert_eq!(status, Some(4), "{stderr}");
    assert!(stderr.contains("unauthenticated"), "{stderr}");
}
