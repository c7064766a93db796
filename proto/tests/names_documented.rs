//! Every name that crosses a boundary is written down where users and dashboards look for it:
//! incident causes and resolvers in jobs.proto's enums, dashboards/METRICS.md and a runbook section of
//! docs/operations.md each; toil kinds in jobs.proto's enum and METRICS.md (`wire.rs` checks the generated code maps each
//! one both ways). Names the docs list that no
//! enum has are stale and fail too.

use std::collections::BTreeSet;
use std::path::PathBuf;

use facetrain_proto::incidents::{IncidentCause, Resolver, ToilKind};

fn repo_file(path: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The values of `enum name` in a .proto, without the `PREFIX_` and UNSPECIFIED, lower-cased:
/// `INCIDENT_CAUSE_WORKER_LOST = 1;` is `worker_lost`.
fn proto_enum(proto: &str, name: &str, prefix: &str) -> BTreeSet<String> {
    let body = &proto[proto.find(&format!("enum {name} {{")).unwrap_or_else(|| panic!("no enum {name}"))..];
    let body = &body[..body.find('}').unwrap_or(body.len())];
    body.lines()
        .filter_map(|l| l.trim().split_once(" = "))
        .filter_map(|(value, _)| value.strip_prefix(&format!("{prefix}_")))
        .filter(|value| *value != "UNSPECIFIED")
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The backquoted names in the METRICS.md row of `metric`, after `label`.
fn metrics_list(metrics: &str, metric: &str, label: &str) -> BTreeSet<String> {
    let row = metrics
        .lines()
        .find(|l| l.starts_with(&format!("| `{metric}`")))
        .unwrap_or_else(|| panic!("no row for {metric}"));
    let meaning = row.rsplit('|').nth(1).unwrap_or_default();
    let after =
        &meaning[meaning.find(&format!("`{label}`")).unwrap_or_else(|| panic!("{metric}: no `{label}` list"))..];
    let list = after.split('.').next().unwrap_or_default();
    list.split('`').skip(1).step_by(2).filter(|w| *w != label).map(String::from).collect()
}

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> BTreeSet<String> {
    all.iter().map(|v| name(*v).to_string()).collect()
}

#[test]
fn incident_causes_are_documented_everywhere_and_nothing_else_is() {
    let causes = names(&IncidentCause::ALL, IncidentCause::name);
    let proto = repo_file("proto/proto/facetrain/v1/jobs.proto");
    assert_eq!(proto_enum(&proto, "IncidentCause", "INCIDENT_CAUSE"), causes, "jobs.proto enum IncidentCause");
    let metrics = repo_file("dashboards/METRICS.md");
    assert_eq!(metrics_list(&metrics, "facetrain_incidents_total", "cause"), causes, "METRICS.md incidents cause");
    let runbook = repo_file("docs/operations.md");
    let section =
        &runbook[runbook.find("## Incidents by cause").expect("docs/operations.md: no `## Incidents by cause`")..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |end| end + 3)];
    let headings: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("### `").and_then(|l| l.strip_suffix('`')))
        .map(String::from)
        .collect();
    assert_eq!(headings, causes, "docs/operations.md: one `### `cause`` runbook per cause");
}

#[test]
fn resolvers_and_toil_kinds_are_documented() {
    let resolvers = names(&Resolver::ALL, Resolver::name);
    let proto = repo_file("proto/proto/facetrain/v1/jobs.proto");
    assert_eq!(proto_enum(&proto, "Resolver", "RESOLVER"), resolvers);
    let metrics = repo_file("dashboards/METRICS.md");
    assert_eq!(metrics_list(&metrics, "facetrain_incidents_total", "resolved_by"), resolvers);
    let kinds = names(&ToilKind::ALL, ToilKind::name);
    assert_eq!(proto_enum(&proto, "ToilKind", "TOIL_KIND"), kinds);
    assert_eq!(metrics_list(&metrics, "facetrain_toil_events_total", "kind"), kinds);
}
