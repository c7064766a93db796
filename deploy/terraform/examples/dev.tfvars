# A small development environment. Copy, adjust, and pass with
#   make deploy DEPLOY_TFVARS=deploy/terraform/examples/dev.tfvars DEPLOY_TF_STATE_BUCKET=...
project_id = "facetrain-dev"
region     = "europe-west4"

# L4 GPUs are offered in these zones of europe-west4.
gpu_node_locations = ["europe-west4-a", "europe-west4-b", "europe-west4-c"]
gpu_machine_type   = "g2-standard-8"
gpu_type           = "nvidia-l4"
gpu_max_nodes      = 4
# Dev tolerates preemptions (they exercise worker-loss recovery) and costs ~70% less.
gpu_spot = true

system_machine_type = "e2-standard-4"
system_max_nodes    = 2

master_authorized_networks = [
  { cidr_block = "203.0.113.0/24", display_name = "office VPN (example)" },
]

oncall_group = "facetrain-oncall@example.com"

# Dev clusters are torn down and rebuilt; production keeps the default (true).
deletion_protection = false

labels = { env = "dev" }
