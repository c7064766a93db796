//! `ListJobs` a page at a time, oldest first. Every job with its job.toml in one message once
//! passed the 4 MiB most clients accept by default, and then facectl's 8 MiB, for good.
//! The page token is the id of the last job returned; job ids grow with submission time, so the
//! next page is the jobs after it, whatever was submitted or ended in between.

use facetrain_proto::pb;

use super::convert;
use crate::cluster::{DomainError, JobView};

/// Jobs in a page when the request does not say.
pub const DEFAULT_PAGE_SIZE: usize = 100;
pub const MAX_PAGE_SIZE: usize = 1000;

/// A requested page size: 0 for `default`, at most `max`.
pub fn page_size(requested: i64, default: usize, max: usize) -> Result<usize, DomainError> {
    match usize::try_from(requested) {
        Ok(0) => Ok(default),
        Ok(size) if size <= max => Ok(size),
        _ => Err(DomainError::invalid(
            "page_size",
            format!("page_size: expected 0 (for {default}) to {max}, got {requested}"),
        )),
    }
}

/// The page `request` asks for out of `jobs` (in any order); only the page is converted.
pub fn page(mut jobs: Vec<JobView>, request: &pb::ListJobsRequest) -> Result<pb::ListJobsResponse, DomainError> {
    let size = page_size(i64::from(request.page_size), DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let mut states = Vec::with_capacity(request.states.len());
    for &state in &request.states {
        match pb::JobState::try_from(state) {
            Ok(pb::JobState::Unspecified) | Err(_) => {
                return Err(DomainError::invalid("states", format!("states: {state} is not a job state")));
            }
            Ok(known) => states.push(known),
        }
    }
    let full = match pb::JobView::try_from(request.view) {
        Ok(pb::JobView::Full) => true,
        Ok(pb::JobView::Basic | pb::JobView::Unspecified) => false,
        Err(_) => return Err(DomainError::invalid("view", format!("view: {} is not a job view", request.view))),
    };
    jobs.retain(|view| {
        let job = &view.record;
        (states.is_empty() || states.contains(&convert::state(job.state)))
            && (request.page_token.is_empty() || job.id.as_str() > request.page_token.as_str())
    });
    jobs.sort_by(|a, b| a.record.id.cmp(&b.record.id));
    let more = jobs.len() > size;
    jobs.truncate(size);
    if !full {
        jobs.iter_mut().for_each(|view| view.record.job_toml.clear());
    }
    let next_page_token = match jobs.last() {
        Some(last) if more => last.record.id.clone(),
        _ => String::new(),
    };
    Ok(pb::ListJobsResponse { jobs: jobs.iter().map(convert::job).collect(), next_page_token })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{JobRecord, JobState};

    fn job(id: &str, state: JobState) -> JobView {
        let mut record = JobRecord::queued(id.into(), "x".into(), "name = \"x\"".into(), "ci".into(), 10, 0);
        record.state = state;
        JobView { record, workers: 0, queue_position: 0 }
    }

    fn ids(response: &pb::ListJobsResponse) -> Vec<&str> {
        response.jobs.iter().map(|j| j.id.as_str()).collect()
    }

    #[test]
    fn pages_follow_each_other_oldest_first_and_the_last_has_no_token() {
        let jobs: Vec<_> = ["j-3", "j-1", "j-5", "j-2", "j-4"].map(|id| job(id, JobState::Queued)).into();
        let mut request = pb::ListJobsRequest { page_size: 2, ..Default::default() };
        let mut seen = Vec::new();
        loop {
            let response = page(jobs.clone(), &request).unwrap();
            seen.extend(ids(&response).iter().map(|s| s.to_string()));
            if response.next_page_token.is_empty() {
                break;
            }
            request.page_token = response.next_page_token;
        }
        assert_eq!(seen, ["j-1", "j-2", "j-3", "j-4", "j-5"]);
    }

    #[test]
    fn the_basic_view_leaves_out_the_job_toml_and_states_filter() {
        let jobs = vec![job("j-1", JobState::Running), job("j-2", JobState::Failed)];
        let request = pb::ListJobsRequest { states: vec![pb::JobState::Failed as i32], ..Default::default() };
        let response = page(jobs.clone(), &request).unwrap();
        assert_eq!(ids(&response), ["j-2"]);
        assert_eq!(response.jobs[0].job_toml, "");
        let full = pb::ListJobsRequest { view: pb::JobView::Full as i32, ..Default::default() };
        assert_eq!(page(jobs, &full).unwrap().jobs[0].job_toml, "name = \"x\"");
    }

    #[test]
    fn sizes_states_and_views_out_of_range_are_refused_by_field() {
        let bad = [
            pb::ListJobsRequest { page_size: -1, ..Default::default() },
            pb::ListJobsRequest { page_size: 1001, ..Default::default() },
            pb::ListJobsRequest { states: vec![0], ..Default::default() },
            pb::ListJobsRequest { states: vec![99], ..Default::default() },
            pb::ListJobsRequest { view: 7, ..Default::default() },
        ];
        for request in bad {
            let error = page(Vec::new(), &request).unwrap_err();
            assert!(matches!(error, DomainError::Invalid { .. }), "{request:?}");
        }
        let default = pb::ListJobsRequest::default();
        let jobs: Vec<_> = (0..150).map(|i| job(&format!("j-{i:03}"), JobState::Queued)).collect();
        let response = page(jobs, &default).unwrap();
        assert_eq!((response.jobs.len(), response.next_page_token.as_str()), (DEFAULT_PAGE_SIZE, "j-099"));
    }
}
