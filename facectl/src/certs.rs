//! `facectl certs create`: a private CA and the certificates a cluster needs (coordinator,
//! workers, one facectl client) plus an API token, for a test cluster or a first deployment.
//! Production clusters can issue the same shapes from cert-manager (see deploy/README.md).

use std::path::Path;

use anyhow::Context;
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use facetrain_worker::agent::DEFAULT_PEER_SERVER_NAME;

/// What `create` writes, so tests and docs name the same files.
pub const FILES: [&str; 9] = [
    "ca.pem",
    "ca-key.pem",
    "coordinator.pem",
    "coordinator-key.pem",
    "worker.pem",
    "worker-key.pem",
    "client.pem",
    "client-key.pem",
    "api-tokens",
];

pub fn create(dir: &Path, coordinator_names: &[String], days: u32, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if !force && let Some(existing) = FILES.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
        anyhow::bail!("{} exists; pass --force to replace every file", existing.display());
    }
    let (ca_params, ca_key) = authority(days)?;
    let ca = ca_params.self_signed(&ca_key)?;
    write(dir, "ca.pem", &ca.pem(), false)?;
    write(dir, "ca-key.pem", &ca_key.serialize_pem(), true)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(coordinator_names.iter().cloned());
    let leaves = [
        ("coordinator", names, "facetrain-coordinator", vec![ExtendedKeyUsagePurpose::ServerAuth]),
        (
            "worker",
            vec![DEFAULT_PEER_SERVER_NAME.to_string()],
            DEFAULT_PEER_SERVER_NAME,
            // Workers serve ring traffic and dial the coordinator and each other.
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
        ),
        ("client", vec!["facectl".to_string()], "facectl", vec![ExtendedKeyUsagePurpose::ClientAuth]),
    ];
    for (file, names, common_name, usages) in leaves {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = usages;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        (params.not_before, params.not_after) = validity(days);
        let cert = params.signed_by(&key, &issuer)?;
        write(dir, &format!("{file}.pem"), &cert.pem(), false)?;
        write(dir, &format!("{file}-key.pem"), &key.serialize_pem(), true)?;
    }
    let token: String = rand::rng().random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect();
    write(dir, "api-tokens", &format!("# facetrain API tokens, one per line\n{token}\n"), true)?;
    println!("wrote {} to {}", FILES.join(", "), dir.display());
    Ok(())
}

fn authority(days: u32) -> anyhow::Result<(CertificateParams, KeyPair)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::CommonName, "facetrain cluster CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params.not_before, params.not_after) = validity(days.saturating_mul(2));
    Ok((params, key))
}

/// From a day ago (clock skew) for `days`.
fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - Duration::days(1), now + Duration::days(days as i64))
}

fn write(dir: &Path, name: &str, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mode = if secret { 0o600 } else { 0o644 };
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}
