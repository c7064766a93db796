resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84:images hold only the open-source facetrain binaries, encrypted at rest with Google-managed keys; CMEK needs a KMS key ring, which GCP never deletes, so destroying and re-creating an environment would fail on the existing key ring
  repository_id = var.registry_repository_id
  location      = var.region
  format        = "DOCKER"
  description   = "facetrain container images (coordinator, worker-cpu, worker-cuda)"

  # A tag, once pushed, always means the same image: deploys pin digests, rollbacks are exact.
  docker_config {
    immutable_tags = true
  }

  # Keep the newest versions, drop old ones and untagged leftovers (CUDA images are large).
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = var.registry_keep_versions
    }
  }
  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "604800s" # 7 days
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "TAGGED"
      older_than = "7776000s" # 90 days, unless kept by keep-recent
    }
  }

  labels = local.labels

  depends_on = [google_project_service.this]
}
