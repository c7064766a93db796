//! Every name that crosses a boundary is written down where users and dashboards look for it:
//! incident causes and resolvers in jobs.proto, dashboards/METRICS.md and a runbook section of
//! docs/operations.md each; toil kinds in jobs.proto and METRICS.md. Names the docs list that no
//! enum has are stale and fail too.

use std::collections::BTreeSet;
use std::path::PathBuf;

use facetrain_proto::incidents::{IncidentCause, Resolver, ToilKind};

fn repo_file(path: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The `a | b | c` list in the comment above `field` in `message`.
fn proto_list(proto: &str, message: &str, field: &str) -> BTreeSet<String> {
    let body = &proto[proto.find(&format!("message {message} {{")).unwrap_or_else(|| panic!("no message {message}"))..];
    let field_at = body.find(&format!(" {field} = ")).unwrap_or_else(|| panic!("no field {message}.{field}"));
    let before = &body[..field_at];
    let comment: String = before
        .lines()
        .rev()
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("//"))
        .map(|l| l.trim_start().trim_start_matches("//").to_string())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" ");
    comment.split('|').filter_map(|piece| piece.split_whitespace().next()).map(String::from).collect()
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
    assert_eq!(proto_list(&proto, "Incident", "cause"), causes, "jobs.proto Incident.cause");
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
    assert_eq!(proto_list(&proto, "Incident", "resolved_by"), resolvers);
    let metrics = repo_file("dashboards/METRICS.md");
    assert_eq!(metrics_list(&metrics, "facetrain_incidents_total", "resolved_by"), resolvers);
    let kinds = names(&ToilKind::ALL, ToilKind::name);
    assert_eq!(proto_list(&proto, "ToilEvent", "kind"), kinds);
    assert_eq!(metrics_list(&metrics, "facetrain_toil_events_total", "kind"), kinds);
}
