//! `facectl certs create`: a private CA and the certificates a cluster needs (coordinator,
//! workers, one facectl client) plus an API token, for a test cluster or a first deployment.
//! Production clusters can issue the same shapes from cert-manager (see deploy/README.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use facetrain_worker::agent::DEFAULT_PEER_SERVER_NAME;

use crate::output::{Output, print_json};

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

/// The longest validity `--days` takes (the CA gets twice as long: 20 years).
pub const MAX_DAYS: u32 = 3650;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// A private CA, coordinator/worker/client certificates and an API token, in one folder.
    Create(CreateArgs),
}

impl Command {
    pub fn run(self, output: Output) -> anyhow::Result<()> {
        match self {
            Self::Create(args) => args.run(output),
        }
    }
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    dir: PathBuf,
    /// Extra names (DNS or IP) on the coordinator's certificate, e.g. its Service name.
    #[arg(long = "coordinator-name")]
    coordinator_names: Vec<String>,
    /// Validity of the leaf certificates in days (the CA gets twice as long).
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_DAYS)))]
    days: u32,
    /// Replace existing files.
    #[arg(long)]
    force: bool,
}

impl CreateArgs {
    /// Everything is generated in memory first: refused arguments or a failed generation leave
    /// no folder and no file behind.
    pub fn run(self, output: Output) -> anyhow::Result<()> {
        let Self { dir, coordinator_names, days, force } = self;
        let files = generate(&coordinator_names, days)?;
        if !force && let Some(existing) = FILES.iter().map(|f| dir.join(f)).find(|p| p.exists()) {
            anyhow::bail!("{} exists; pass --force to replace every file", existing.display());
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, text, secret) in &files {
            write(&dir, name, text, *secret)?;
        }
        match output {
            Output::Json => print_json(&serde_json::json!({"dir": dir.display().to_string(), "files": FILES})),
            Output::Text => println!("wrote {} to {}", FILES.join(", "), dir.display()),
        }
        Ok(())
    }
}

/// The files of [`FILES`], in that order: (name, PEM or token text, whether it is a secret).
fn generate(coordinator_names: &[String], days: u32) -> anyhow::Result<Vec<(String, String, bool)>> {
    if !(1..=MAX_DAYS).contains(&days) {
        anyhow::bail!("--days {days}: expected 1..={MAX_DAYS}");
    }
    let mut files = Vec::with_capacity(FILES.len());
    let (ca_params, ca_key) = authority(days)?;
    let ca = ca_params.self_signed(&ca_key)?;
    files.push(("ca.pem".to_string(), ca.pem(), false));
    files.push(("ca-key.pem".to_string(), ca_key.serialize_pem(), true));
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
        (params.not_before, params.not_after) = validity(days)?;
        let cert = params.signed_by(&key, &issuer)?;
        files.push((format!("{file}.pem"), cert.pem(), false));
        files.push((format!("{file}-key.pem"), key.serialize_pem(), true));
    }
    let token: String = rand::rng().random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect();
    files.push(("api-tokens".to_string(), format!("# facetrain API tokens, one per line\n{token}\n"), true));
    Ok(files)
}

fn authority(days: u32) -> anyhow::Result<(CertificateParams, KeyPair)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::CommonName, "facetrain cluster CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params.not_before, params.not_after) = validity(days.saturating_mul(2))?;
    Ok((params, key))
}

/// From a day ago (clock skew) for `days`; an error rather than a panic past year 9999.
fn validity(days: u32) -> anyhow::Result<(OffsetDateTime, OffsetDateTime)> {
    let now = OffsetDateTime::now_utc();
    let until = now.checked_add(Duration::days(i64::from(days)));
    let until = until.with_context(|| format!("a validity of {days} days ends after the year 9999"))?;
    Ok((now - Duration::days(1), until))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_out_of_range_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("certs");
        for days in [0, MAX_DAYS + 1, 4_000_000] {
            let args = CreateArgs { dir: target.clone(), coordinator_names: Vec::new(), days, force: false };
            let error = args.run(Output::Text).unwrap_err().to_string();
            assert!(error.contains(&format!("1..={MAX_DAYS}")), "{error}");
            assert!(!target.exists(), "--days {days} created {}", target.display());
        }
        assert!(validity(u32::MAX).is_err());
    }

    #[test]
    fn every_file_is_generated_in_order() {
        let files = generate(&["coordinator.example".into()], 1).unwrap();
        assert_eq!(files.iter().map(|(name, ..)| name.as_str()).collect::<Vec<_>>(), FILES);
        assert!(
            files
                .iter()
                .filter(|(_, _, secret)| *secret)
                .all(|(name, ..)| name.contains("key") || name == "api-tokens")
        );
    }
}
