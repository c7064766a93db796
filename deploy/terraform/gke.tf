# Regional GKE Standard cluster with two node pools:
#   system - always on, runs the coordinator (its PVC is zonal, the pool spans zones) and add-ons;
#   gpu    - autoscaled 0..gpu_max_nodes, tainted, runs only the GPU workers.

locals {
  # Shared by both pools: hardened, least-privilege nodes.
  node_oauth_scopes = ["https://www.googleapis.com/auth/cloud-platform"] # access is governed by IAM on the node SA
  node_metadata     = { disable-legacy-endpoints = "true" }
}

resource "google_container_cluster" "this" {
  # checkov:skip=CKV_GCP_12:NetworkPolicy is enforced by Dataplane V2 (datapath_provider = ADVANCED_DATAPATH); the network_policy block is the legacy Calico add-on and GKE rejects enabling it together with Dataplane V2
  name     = var.cluster_name
  location = var.region

  network         = google_compute_network.this.id
  subnetwork      = google_compute_subnetwork.this.id
  networking_mode = "VPC_NATIVE"
  ip_allocation_policy {
    cluster_secondary_range_name  = "pods"
    services_secondary_range_name = "services"
  }

  # Node pools are managed below, so that changing one never recreates the cluster.
  remove_default_node_pool = true
  initial_node_count       = 1
  # Hardened like the real pools, because the default pool exists for a few minutes at creation.
  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    metadata        = local.node_metadata
    image_type      = "COS_CONTAINERD"
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }

  deletion_protection = var.deletion_protection

  release_channel {
    channel = var.release_channel
  }
  maintenance_policy {
    recurring_window {
      start_time = var.maintenance_window.start_time
      end_time   = var.maintenance_window.end_time
      recurrence = var.maintenance_window.recurrence
    }
  }

  # Dataplane V2 (Cilium) enforces the NetworkPolicies in deploy/k8s/base.
  datapath_provider           = "ADVANCED_DATAPATH"
  enable_intranode_visibility = true

  private_cluster_config {
    enable_private_nodes    = true
    enable_private_endpoint = false # CI and operators use the public endpoint, restricted below
    master_ipv4_cidr_block  = var.master_ipv4_cidr_block
  }
  master_authorized_networks_config {
    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  workload_identity_config {
    workload_pool = local.workload_pool
  }

  dynamic "authenticator_groups_config" {
    for_each = var.rbac_security_group == null ? [] : [var.rbac_security_group]
    content {
      security_group = authenticator_groups_config.value
    }
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  enable_shielded_nodes = true
  enable_legacy_abac    = false

  # Admission check against the project's Binary Authorization policy (default: allow all, audited).
  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }
  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]
  }

  resource_labels = local.labels

  lifecycle {
    # node_config only shapes the short-lived default pool, and changing it would force a new
    # cluster: never let an edit of the shared locals above recreate the cluster.
    ignore_changes = [node_config]
  }

  depends_on = [google_project_service.this]
}

resource "google_container_node_pool" "system" {
  name     = "system"
  cluster  = google_container_cluster.this.id
  location = var.region

  autoscaling {
    total_min_node_count = var.system_min_nodes
    total_max_node_count = var.system_max_nodes
    location_policy      = "BALANCED"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = var.system_machine_type
    image_type      = "COS_CONTAINERD"
    disk_type       = "pd-balanced"
    disk_size_gb    = 50
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    metadata        = local.node_metadata
    labels          = { "facetrain.io/pool" = "system" }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }
}

resource "google_container_node_pool" "gpu" {
  name           = "gpu"
  cluster        = google_container_cluster.this.id
  location       = var.region
  node_locations = length(var.gpu_node_locations) > 0 ? var.gpu_node_locations : null

  # Scale to zero when no training runs: GPUs are the cost.
  autoscaling {
    total_min_node_count = 0
    total_max_node_count = var.gpu_max_nodes
    location_policy      = "ANY" # take GPU capacity in whichever zone has it
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  # No surge: a surge node would need a spare GPU. One node at a time matches the workers' PDB.
  upgrade_settings {
    max_surge       = 0
    max_unavailable = 1
  }

  node_config {
    machine_type    = var.gpu_machine_type
    image_type      = "COS_CONTAINERD"
    disk_type       = "pd-balanced"
    disk_size_gb    = 100 # the CUDA worker image is several GB
    spot            = var.gpu_spot
    service_account = google_service_account.nodes.email
    oauth_scopes    = local.node_oauth_scopes
    metadata        = local.node_metadata
    # Selected by deploy/k8s/components/gpu. GKE adds the nvidia.com/gpu NoSchedule taint itself.
    labels = { "facetrain.io/pool" = "gpu" }

    guest_accelerator {
      type  = var.gpu_type
      count = var.gpus_per_node
      # GKE installs and upgrades the NVIDIA driver; no driver DaemonSet to maintain.
      gpu_driver_installation_config {
        gpu_driver_version = "LATEST"
      }
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }
  }
}
