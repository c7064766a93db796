# Identities and least-privilege grants. Nothing here is granted at project level except what
# GKE nodes need to report logs/metrics and what on-call needs to fetch cluster credentials.

# ---- Nodes ------------------------------------------------------------------------------------
# Not the Compute Engine default SA (Editor on the project): a dedicated one with only the
# node role and pull access to our repository.
resource "google_service_account" "nodes" {
  account_id   = "${var.cluster_name}-nodes"
  display_name = "facetrain GKE nodes"
}

resource "google_project_iam_member" "nodes_default" {
  project = var.project_id
  role    = "roles/container.defaultNodeServiceAccount"
  member  = google_service_account.nodes.member
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.nodes.member
}

# ---- Workloads (Workload Identity) ------------------------------------------------------------
resource "google_service_account" "coordinator" {
  account_id   = "facetrain-coordinator"
  display_name = "facetrain coordinator (Workload Identity)"
}

resource "google_service_account" "worker" {
  account_id   = "facetrain-worker"
  display_name = "facetrain worker (Workload Identity)"
}

locals {
  workload_identities = {
    coordinator = { gsa = google_service_account.coordinator, ksa = var.coordinator_ksa }
    worker      = { gsa = google_service_account.worker, ksa = var.worker_ksa }
  }
}

# Lets exactly one Kubernetes service account act as each GCP service account. The workload
# pool only exists once the cluster does, hence the dependency.
resource "google_service_account_iam_member" "workload_identity" {
  for_each = local.workload_identities

  service_account_id = each.value.gsa.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${local.workload_pool}[${var.namespace}/${each.value.ksa}]"

  depends_on = [google_container_cluster.this]
}

# Both processes read datasets and write/prune checkpoints (the checkpoint store deletes old
# checkpoints itself), so both need object read/write/delete - on this bucket only, with no
# bucket or IAM administration (objectUser, not objectAdmin or storage.admin).
resource "google_storage_bucket_iam_member" "artifacts_rw" {
  for_each = local.workload_identities

  bucket = google_storage_bucket.artifacts.name
  role   = "roles/storage.objectUser"
  member = each.value.gsa.member
}

# Datasets kept in other buckets: read-only, workers only.
resource "google_storage_bucket_iam_member" "datasets_read" {
  for_each = toset(var.dataset_bucket_names)

  bucket = each.value
  role   = "roles/storage.objectViewer"
  member = google_service_account.worker.member
}

# ---- People -------------------------------------------------------------------------------------
# clusterViewer is enough for `gcloud container clusters get-credentials`; what on-call may do in
# the namespace is the facetrain-operator Role (deploy/k8s/base/operator-role.yaml).
resource "google_project_iam_member" "oncall_cluster_viewer" {
  count = var.oncall_group == "" ? 0 : 1

  project = var.project_id
  role    = "roles/container.clusterViewer"
  member  = "group:${var.oncall_group}"
}
