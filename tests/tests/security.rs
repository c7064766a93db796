//! Authenticated and encrypted traffic against real processes: certificates from
//! `facectl certs create`, a coordinator on TLS with mutual TLS for workers and a token for
//! facectl, and ring all-reduce between workers over mutual TLS.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use facetrain_proto::internal::{self, worker_service_client::WorkerServiceClient};
use facetrain_proto::tls::TlsFiles;
use facetrain_tests::{Sandbox, binary, small_dataset, small_job};

const LONG: Duration = Duration::from_secs(120);

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn a_ring_job_trains_over_mutual_tls_and_no_secret_reaches_a_log() {
    let mut sandbox = Sandbox::start_secure();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "secure", &data, 2, 20, "");
    let text = std::fs::read_to_string(&job).unwrap().replace("count = 2", "count = 2\nreduction = \"ring\"");
    std::fs::write(&job, text).unwrap();
    sandbox.add_worker("a");
    sandbox.add_worker("b");
    let id = sandbox.submit(&job);
    let done = sandbox.wait_for_state(&id, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}\n{}", sandbox.log("worker-a.log"));
    assert_eq!(done["ledger"]["positions_trained"], 20 * 20, "{done}");

    let tokens = std::fs::read_to_string(sandbox.certs().join("api-tokens")).unwrap();
    let token = tokens.lines().find(|l| !l.starts_with('#')).unwrap();
    for log in ["coordinator.log", "worker-a.log", "worker-b.log"] {
        assert!(!sandbox.log(log).contains(token), "{log} leaks the API token");
        assert!(!sandbox.log(log).contains("PRIVATE KEY"), "{log} leaks a private key");
    }
}

#[test]
fn callers_without_credentials_are_refused_with_a_clear_status() {
    let sandbox = Sandbox::start_secure();
    let ca = sandbox.certs().join("ca.pem");

    // No token, no client certificate.
    let output = Command::new(binary("facectl"))
        .args(["list", "--coordinator", &sandbox.url(), "--tls-ca", ca.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("unauthenticated: this coordinator requires authentication"),
        "{}",
        stderr(&output)
    );

    // A wrong token.
    let output = Command::new(binary("facectl"))
        .args(["list", "--coordinator", &sandbox.url(), "--tls-ca", ca.to_str().unwrap()])
        .env("FACETRAIN_TOKEN", "not-the-token-0123456789")
        .output()
        .unwrap();
    assert!(stderr(&output).contains("the bearer token is not valid"), "{}", stderr(&output));

    // Plaintext against the TLS port never reaches a handler.
    let plaintext = sandbox.url().replace("https://", "http://");
    let output = Command::new(binary("facectl")).args(["list", "--coordinator", &plaintext]).output().unwrap();
    assert!(!output.status.success(), "plaintext call answered: {}", String::from_utf8_lossy(&output.stdout));

    // A client certificate works instead of a token.
    let file = |name: &str| sandbox.certs().join(name).display().to_string();
    let output = Command::new(binary("facectl"))
        .args(["list", "--coordinator", &sandbox.url(), "--tls-ca", &file("ca.pem")])
        .args(["--tls-cert", &file("client.pem"), "--tls-key", &file("client-key.pem")])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    // The worker protocol needs a client certificate even from a token holder.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tls = TlsFiles { ca: Some(ca.clone()), ..TlsFiles::default() };
    let channel = runtime.block_on(tls.endpoint(&sandbox.url(), None).unwrap().connect()).unwrap();
    let token = facetrain_proto::auth::Token::read(&sandbox.certs().join("api-tokens")).unwrap();
    let mut rogue =
        WorkerServiceClient::with_interceptor(channel, facetrain_proto::auth::AttachToken::new(Some(&token)));
    let refused = runtime
        .block_on(rogue.register(internal::RegisterRequest { name: "rogue".into(), ..Default::default() }))
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("client certificate"), "{}", refused.message());

    // facectl's own certificate (same CA, another name) may use the job API but not act as a worker.
    let operator = TlsFiles {
        ca: Some(ca.clone()),
        cert: Some(sandbox.certs().join("client.pem")),
        key: Some(sandbox.certs().join("client-key.pem")),
    };
    let channel = runtime.block_on(operator.endpoint(&sandbox.url(), None).unwrap().connect()).unwrap();
    let refused = runtime
        .block_on(
            WorkerServiceClient::new(channel)
                .register(internal::RegisterRequest { name: "impostor".into(), ..Default::default() }),
        )
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    assert!(refused.message().contains("facetrain-worker"), "{}", refused.message());
}

#[test]
fn a_certificate_from_another_ca_is_rejected_at_the_handshake() {
    let sandbox = Sandbox::start_secure();
    let other = sandbox.dir.path().join("other-ca");
    let created = Command::new(binary("facectl")).args(["certs", "create"]).arg(&other).output().unwrap();
    assert!(created.status.success());
    let file = |name: &str| other.join(name).display().to_string();
    // Trusting the wrong CA: the coordinator's certificate does not verify.
    let output = Command::new(binary("facectl"))
        .args(["list", "--coordinator", &sandbox.url(), "--tls-ca", &file("ca.pem")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    // A worker certificate signed by another CA is refused by the coordinator.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tls = TlsFiles {
        ca: Some(sandbox.certs().join("ca.pem")),
        cert: Some(other.join("worker.pem")),
        key: Some(other.join("worker-key.pem")),
    };
    let connected = runtime.block_on(async {
        let channel = tls.endpoint(&sandbox.url(), None).unwrap().connect().await?;
        let mut client = WorkerServiceClient::new(channel);
        client.register(internal::RegisterRequest { name: "forged".into(), ..Default::default() }).await?;
        anyhow::Ok(())
    });
    assert!(connected.is_err(), "a foreign worker certificate was accepted");
}

#[test]
fn an_open_coordinator_off_loopback_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(binary("facetrain-coordinator"))
        .args(["--listen", "0.0.0.0:0", "--metrics-listen", "127.0.0.1:0", "--store"])
        .arg(dir.path().join("jobs.redb"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("refusing to serve an unauthenticated API"), "{}", stderr(&output));
}

#[test]
fn tokens_in_clear_text_off_loopback_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "0123456789abcdef-token\n").unwrap();
    let output = Command::new(binary("facetrain-coordinator"))
        .args(["--listen", "0.0.0.0:0", "--metrics-listen", "127.0.0.1:0", "--store"])
        .arg(dir.path().join("jobs.redb"))
        .arg("--token-file")
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("refusing to accept tokens in clear text"), "{}", stderr(&output));
}

fn facectl_with_certificate(sandbox: &Sandbox, cert: &std::path::Path, key: &std::path::Path) -> std::process::Output {
    Command::new(binary("facectl"))
        .args(["list", "--coordinator", &sandbox.url(), "--tls-ca"])
        .arg(sandbox.certs().join("ca.pem"))
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .output()
        .unwrap()
}

#[test]
fn a_worker_certificate_may_not_use_the_job_api_and_refusals_are_logged_once() {
    let sandbox = Sandbox::start_secure();
    let certs = sandbox.certs();
    for _ in 0..3 {
        let output = facectl_with_certificate(&sandbox, &certs.join("worker.pem"), &certs.join("worker-key.pem"));
        assert!(!output.status.success());
        assert!(stderr(&output).contains("may only call worker RPCs"), "{}", stderr(&output));
    }
    // Three refusals from one address within the window: one log line.
    let log = sandbox.log("coordinator.log");
    assert_eq!(log.matches("request refused").count(), 1, "{log}");
}

/// A client certificate for `facectl` signed by the sandbox's CA, valid only in the past.
fn expired_client_certificate(certs: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::from_pem(&std::fs::read_to_string(certs.join("ca-key.pem")).unwrap()).unwrap();
    // The issuer is named as `facectl certs create` names it; its key signs.
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "facetrain cluster CA");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["facectl".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "facectl");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    (params.not_before, params.not_after) = (now - time::Duration::days(10), now - time::Duration::days(1));
    let cert = params.signed_by(&key, &issuer).unwrap();
    let (cert_path, key_path) = (certs.join("expired.pem"), certs.join("expired-key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

#[test]
fn tls_refusals_reach_the_client_with_the_tls_reason() {
    let sandbox = Sandbox::start_secure();
    let other = sandbox.dir.path().join("other-ca");
    let created = Command::new(binary("facectl")).args(["certs", "create"]).arg(&other).output().unwrap();
    assert!(created.status.success());

    // The coordinator does not trust a client certificate from another CA (both CAs have the
    // same name, so the alert is about the signature).
    let output = facectl_with_certificate(&sandbox, &other.join("client.pem"), &other.join("client-key.pem"));
    let text = stderr(&output);
    assert!(!output.status.success());
    assert!(
        text.contains(&format!("facectl list: the connection to {} failed: received fatal alert: ", sandbox.url())),
        "{text}"
    );
    assert!(text.contains("does not accept this client certificate"), "{text}");

    // Nor an expired one from its own CA.
    let (cert, key) = expired_client_certificate(&sandbox.certs());
    let output = facectl_with_certificate(&sandbox, &cert, &key);
    let text = stderr(&output);
    assert!(!output.status.success());
    assert!(text.contains(&sandbox.url()) && text.contains("received fatal alert: CertificateExpired"), "{text}");

    // facectl does not trust a coordinator certificate from another CA.
    let output = Command::new(binary("facectl"))
        .args(["list", "--coordinator", &sandbox.url(), "--tls-ca"])
        .arg(other.join("ca.pem"))
        .output()
        .unwrap();
    let text = stderr(&output);
    let expected =
        format!("facectl list: cannot connect to {}: transport error: invalid peer certificate", sandbox.url());
    assert!(text.contains(&expected), "{text}");
}

#[test]
fn a_key_that_does_not_match_its_certificate_stops_start_up_before_it_is_announced() {
    let sandbox = Sandbox::start_secure();
    let certs = sandbox.certs();
    let output = Command::new(binary("facetrain-coordinator"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--store"])
        .arg(sandbox.dir.path().join("other.redb"))
        .arg("--tls-cert")
        .arg(certs.join("coordinator.pem"))
        .arg("--tls-key")
        .arg(certs.join("worker-key.pem"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("listening on"), "announced before failing: {stdout}");
    assert!(
        stderr(&output).contains("worker-key.pem: this private key does not belong to the certificate"),
        "{}",
        stderr(&output)
    );

    // A worker with a mismatched pair stops at start-up too, naming the key.
    let output = Command::new(binary("facetrain-worker"))
        .args(["--coordinator", &sandbox.url(), "--metrics-listen", "127.0.0.1:0", "--peer-listen", "127.0.0.1:0"])
        .arg("--tls-ca")
        .arg(certs.join("ca.pem"))
        .arg("--tls-cert")
        .arg(certs.join("worker.pem"))
        .arg("--tls-key")
        .arg(certs.join("client-key.pem"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("client-key.pem: this private key does not belong"), "{}", stderr(&output));
}
