# One bucket for datasets (datasets/) and checkpoints (checkpoints/).
resource "google_storage_bucket" "artifacts" {
  # checkov:skip=CKV_GCP_62:legacy usage logs are superseded by Cloud Audit Logs; enable Data Access audit logs for storage.googleapis.com at project/org level (not here: google_project_iam_audit_config is authoritative per service and would overwrite an existing project policy)
  name     = local.bucket_name
  location = var.region
  # Regional, same region as the GPUs: no cross-region egress on every checkpoint and epoch.
  storage_class = "STANDARD"

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  # Protects checkpoints against a bad overwrite or a wrong `delete`: the previous version stays
  # recoverable for noncurrent_retention_days.
  versioning {
    enabled = true
  }

  # facetrain prunes old checkpoints itself (keeps the newest few); with versioning on, the
  # pruned and overwritten objects become noncurrent and would be kept forever without this.
  lifecycle_rule {
    condition {
      with_state                 = "ARCHIVED"
      days_since_noncurrent_time = var.noncurrent_retention_days
      matches_prefix             = ["checkpoints/"]
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      with_state         = "ARCHIVED"
      num_newer_versions = var.noncurrent_versions_to_keep
      matches_prefix     = ["checkpoints/"]
    }
    action {
      type = "Delete"
    }
  }
  # Multipart/resumable uploads interrupted by a worker loss.
  lifecycle_rule {
    condition {
      age = 2
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  labels = local.labels

  depends_on = [google_project_service.this]
}
