//! `facectl workers`: the coordinator's registered workers, what each can run, and its job.

use clap::Args;
use facetrain_proto::pb;

use crate::connection::Connection;
use crate::output::{Output, print_json};
use crate::remote::Remote;

#[derive(Args, Debug)]
pub struct WorkersArgs {
    #[command(flatten)]
    remote: Remote,
}

impl WorkersArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let mut connection = Connection::open(&self.remote, "workers").await?;
        let request = connection.request(pb::ListWorkersRequest {});
        let response = connection.client.list_workers(request).await.map_err(|s| connection.failed(s))?;
        let workers = response.into_inner().workers;
        match output {
            Output::Json => print_json(&serde_json::Value::Array(workers.iter().map(worker_json).collect())),
            Output::Text => workers.iter().for_each(|w| println!("{}", worker_line(w))),
        }
        Ok(())
    }
}

fn worker_json(w: &pb::Worker) -> serde_json::Value {
    serde_json::json!({
        "id": w.id,
        "name": w.name,
        "backends": w.backends,
        "devices": w.devices,
        "job_id": w.job_id,
    })
}

fn worker_line(w: &pb::Worker) -> String {
    let job = if w.job_id.is_empty() { "idle".to_string() } else { format!("training {}", w.job_id) };
    format!("{} {} backends {} devices {} {job}", w.id, w.name, w.backends.join(","), w.devices.join(","))
}
