terraform {
  # 1.5+: `check` blocks and stable `import` blocks; the 1.x line keeps backwards compatibility.
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    google = {
      source = "hashicorp/google"
      # 6.x and 7.x both carry every argument used here (GPU driver installation, node-pool
      # total_*_node_count, Artifact Registry cleanup policies); 8.x may break them.
      version = ">= 6.14.0, < 8.0.0"
    }
  }

  # State lives in GCS so that `make deploy` is idempotent across machines. Partial
  # configuration: deploy/scripts/deploy.sh passes bucket and prefix (DEPLOY_TF_STATE_BUCKET).
  backend "gcs" {}
}
