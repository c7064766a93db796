# ---- Project and placement ------------------------------------------------------------------

variable "project_id" {
  description = "GCP project that hosts facetrain."
  type        = string
}

variable "region" {
  description = "Region for the (regional) GKE cluster, the bucket and the Artifact Registry repository."
  type        = string
  default     = "europe-west4"
}

variable "labels" {
  description = "Extra labels for every resource that supports them (merged with app=facetrain, managed-by=terraform)."
  type        = map(string)
  default     = {}
}

# ---- Kubernetes identities (must match deploy/k8s) -------------------------------------------

variable "namespace" {
  description = "Kubernetes namespace of the facetrain workloads (deploy/k8s/base sets facetrain)."
  type        = string
  default     = "facetrain"
}

variable "coordinator_ksa" {
  description = "Kubernetes service account of the coordinator, bound to its GCP service account via Workload Identity."
  type        = string
  default     = "facetrain-coordinator"
}

variable "worker_ksa" {
  description = "Kubernetes service account of the workers, bound to their GCP service account via Workload Identity."
  type        = string
  default     = "facetrain-worker"
}

# ---- Cluster ----------------------------------------------------------------------------------

variable "cluster_name" {
  description = "GKE cluster name."
  type        = string
  default     = "facetrain"
}

variable "release_channel" {
  description = "GKE release channel (RAPID, REGULAR or STABLE); GKE upgrades control plane and nodes within it."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "deletion_protection" {
  description = "Refuse `terraform destroy` of the cluster. Set to false deliberately before tearing an environment down."
  type        = bool
  default     = true
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the public control-plane endpoint (CI runners, office/VPN). Empty = only Google-internal and VPC sources."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
  default = []
}

variable "rbac_security_group" {
  description = "Google Groups for RBAC root group (gke-security-groups@YOUR-DOMAIN), so RoleBindings may name Google Groups. null disables it."
  type        = string
  default     = null
}

variable "oncall_group" {
  description = "Google group of the people on call. Gets roles/container.clusterViewer (enough to fetch credentials); their in-namespace rights come from the facetrain-operator Role. Empty = none."
  type        = string
  default     = ""
}

variable "maintenance_window" {
  description = "Recurring window in which GKE may upgrade and repair (RFC 5545 RRULE, UTC times). Default: weekends."
  type = object({
    start_time = string
    end_time   = string
    recurrence = string
  })
  default = {
    start_time = "2025-01-04T02:00:00Z"
    end_time   = "2025-01-04T10:00:00Z"
    recurrence = "FREQ=WEEKLY;BYDAY=SA,SU"
  }
}

# ---- Network ----------------------------------------------------------------------------------

variable "subnet_cidr" {
  description = "Primary range of the cluster subnet (nodes)."
  type        = string
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  description = "Secondary range for pod IPs."
  type        = string
  default     = "10.16.0.0/14"
}

variable "services_cidr" {
  description = "Secondary range for Service cluster IPs."
  type        = string
  default     = "10.20.0.0/20"
}

variable "master_ipv4_cidr_block" {
  description = "/28 for the private control-plane endpoint; must not overlap the ranges above."
  type        = string
  default     = "172.16.0.0/28"
}

# ---- Node pools -------------------------------------------------------------------------------

variable "system_machine_type" {
  description = "Machine type of the system pool (coordinator, cluster add-ons, monitoring)."
  type        = string
  default     = "e2-standard-4"
}

variable "system_min_nodes" {
  description = "Minimum number of system-pool nodes in the whole region."
  type        = number
  default     = 1
}

variable "system_max_nodes" {
  description = "Maximum number of system-pool nodes in the whole region."
  type        = number
  default     = 3
}

variable "gpu_machine_type" {
  description = "Machine type of the GPU pool; must support gpu_type (g2-* for L4, a2-* for A100, a3-* for H100)."
  type        = string
  default     = "g2-standard-8"
}

variable "gpu_type" {
  description = "Accelerator type attached to each GPU node."
  type        = string
  default     = "nvidia-l4"
}

variable "gpus_per_node" {
  description = "GPUs per GPU node. The worker pods request one GPU each (deploy/k8s/components/gpu)."
  type        = number
  default     = 1
}

variable "gpu_max_nodes" {
  description = "Upper bound of the GPU pool autoscaler (whole region). The pool scales to 0 when no worker is scheduled."
  type        = number
  default     = 4

  validation {
    condition     = var.gpu_max_nodes >= 1
    error_message = "gpu_max_nodes must be at least 1."
  }
}

variable "gpu_node_locations" {
  description = "Zones for GPU nodes (GPUs are not offered in every zone). Empty = the cluster's zones."
  type        = list(string)
  default     = []
}

variable "gpu_spot" {
  description = "Use Spot VMs for GPU nodes: much cheaper, preemptible. Training survives it (worker loss is recovered automatically) at the cost of redone steps."
  type        = bool
  default     = false
}

# ---- Storage and registry ---------------------------------------------------------------------

variable "bucket_name" {
  description = "Bucket for datasets and checkpoints. null = \"<project_id>-facetrain\"."
  type        = string
  default     = null
}

variable "noncurrent_retention_days" {
  description = "Days a replaced or deleted checkpoint object version is kept (versioning protects against bad overwrites) before lifecycle deletes it."
  type        = number
  default     = 7
}

variable "noncurrent_versions_to_keep" {
  description = "Also delete noncurrent versions beyond this many newer versions of the same object, whatever their age."
  type        = number
  default     = 3
}

variable "dataset_bucket_names" {
  description = "Other existing buckets the workers may read datasets from (granted roles/storage.objectViewer on each)."
  type        = list(string)
  default     = []
}

variable "registry_repository_id" {
  description = "Artifact Registry Docker repository for the facetrain images."
  type        = string
  default     = "facetrain"
}

variable "registry_keep_versions" {
  description = "Cleanup policy: tagged image versions kept per image (older ones are deleted)."
  type        = number
  default     = 20
}
