# A dedicated VPC: the cluster's firewalling and ranges do not depend on the project's default network.
resource "google_compute_network" "this" {
  name                    = var.cluster_name
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.this]
}

resource "google_compute_subnetwork" "this" {
  name          = "${var.cluster_name}-${var.region}"
  region        = var.region
  network       = google_compute_network.this.id
  ip_cidr_range = var.subnet_cidr

  # Nodes are private: Google APIs (GCS, Artifact Registry) are reached without public IPs.
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }
  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }

  # Flow logs, sampled: enough to investigate a network incident without paying for every packet.
  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Outbound internet for private nodes, for non-Google endpoints only (s3:// datasets, an OTLP
# collector elsewhere). Google APIs go through Private Google Access above.
resource "google_compute_router" "this" {
  name    = "${var.cluster_name}-${var.region}"
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "this" {
  name                               = "${var.cluster_name}-${var.region}"
  router                             = google_compute_router.this.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "ALL_SUBNETWORKS_ALL_IP_RANGES"

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# VPC networks already deny ingress implicitly; this explicit rule at the lowest priority makes
# denied attempts visible in firewall logs. GKE's own rules (control plane -> nodes, health
# checks) have priority 1000 and still win.
resource "google_compute_firewall" "deny_all_ingress" {
  name      = "${var.cluster_name}-deny-all-ingress"
  network   = google_compute_network.this.id
  direction = "INGRESS"
  priority  = 65534

  source_ranges = ["0.0.0.0/0"]
  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
