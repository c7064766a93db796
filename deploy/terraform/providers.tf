provider "google" {
  project = var.project_id
  region  = var.region

  # Every resource that supports labels gets these (cost attribution, ownership).
  default_labels = local.labels
}

locals {
  labels = merge({ app = "facetrain", managed-by = "terraform" }, var.labels)

  bucket_name   = coalesce(var.bucket_name, "${var.project_id}-facetrain")
  registry_host = "${var.region}-docker.pkg.dev"
  workload_pool = "${var.project_id}.svc.id.goog"
}
