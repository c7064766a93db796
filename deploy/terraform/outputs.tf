# Consumed by deploy/scripts/deploy.sh (`terraform output -json`): keep the names stable.

output "project_id" {
  description = "GCP project."
  value       = var.project_id
}

output "cluster_name" {
  description = "GKE cluster name (gcloud container clusters get-credentials)."
  value       = google_container_cluster.this.name
}

output "cluster_location" {
  description = "GKE cluster location (a region: the cluster is regional)."
  value       = google_container_cluster.this.location
}

output "registry_url" {
  description = "Artifact Registry Docker repository URL; images are <registry_url>/<image>:<tag>."
  value       = "${local.registry_host}/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "bucket" {
  description = "Bucket for datasets (gs://<bucket>/datasets/) and checkpoints (gs://<bucket>/checkpoints/)."
  value       = google_storage_bucket.artifacts.name
}

output "coordinator_service_account" {
  description = "GCP service account email of the coordinator (iam.gke.io/gcp-service-account annotation)."
  value       = google_service_account.coordinator.email
}

output "worker_service_account" {
  description = "GCP service account email of the workers (iam.gke.io/gcp-service-account annotation)."
  value       = google_service_account.worker.email
}

output "namespace" {
  description = "Kubernetes namespace the Workload Identity bindings were made for."
  value       = var.namespace
}

output "oncall_group" {
  description = "Google group bound to the facetrain-operator Role by make deploy (empty = none)."
  value       = var.oncall_group
}

output "max_gpu_workers" {
  description = "One-GPU workers the GPU pool can hold at most (gpu_max_nodes * gpus_per_node); make deploy refuses more."
  value       = var.gpu_max_nodes * var.gpus_per_node
}
