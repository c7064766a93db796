//! What a worker can run, decided once at start: the job backends of this build that can work
//! here, the devices it offers, and the GPU it trains on. The coordinator assigns a job only to
//! workers that list its backend, so a GPU job never lands on a CPU-only worker.
//!
//! GPUs are counted from the device nodes the NVIDIA driver creates (`/dev/nvidia0`, ...;
//! Kubernetes' device plugin mounts only the pod's own) and `CUDA_VISIBLE_DEVICES`, without
//! loading the driver: a CUDA build starts on a machine without one and simply offers no GPU.

use crate::job::{Backend, JobSpec, parse_device};

/// This worker's backends and devices.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub backends: Vec<Backend>,
    /// `cpu`, then `cuda:N` for each GPU this worker may use.
    pub devices: Vec<String>,
    /// The GPU this worker trains GPU jobs on (`--device cuda:N`); `None`: the job's `device`.
    pub gpu: Option<usize>,
}

impl Host {
    /// The host as this build sees it. `device`: the `--device` flag (`cpu` or `cuda:N`).
    pub fn detect(built: &[Backend], device: Option<&str>) -> Result<Self, String> {
        let dev: Vec<String> = std::fs::read_dir("/dev")
            .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        Self::from_parts(built, device, visible_gpus(&dev, visible.as_deref()))
    }

    /// [`Self::detect`] over what it read.
    pub fn from_parts(built: &[Backend], device: Option<&str>, gpus: usize) -> Result<Self, String> {
        let chosen = device.map(parse_device).transpose().map_err(|e| format!("--device: {e}"))?;
        let gpu_build = built.iter().any(|b| *b != Backend::Flex);
        let (gpu, gpu_devices): (Option<usize>, Vec<usize>) = match chosen {
            Some(Some(index)) if !gpu_build => {
                return Err(format!(
                    "--device cuda:{index}: this build has no GPU backend (build with the `cuda` feature)"
                ));
            }
            Some(Some(index)) => (Some(index), vec![index]),
            Some(None) => (None, Vec::new()),
            None if gpu_build => (None, (0..gpus).collect()),
            None => (None, Vec::new()),
        };
        let has_gpu = !gpu_devices.is_empty();
        // tch also runs on the CPU; cuda needs a GPU.
        let backends = built.iter().copied().filter(|b| *b != Backend::Cuda || has_gpu).collect();
        let devices = std::iter::once("cpu".to_string()).chain(gpu_devices.iter().map(|i| format!("cuda:{i}")));
        Ok(Self { backends, devices: devices.collect(), gpu })
    }

    /// The device a backend trains on here: a GPU job goes to this worker's GPU.
    pub fn device_for(&self, backend: Backend) -> String {
        match backend {
            Backend::Flex => "cpu".into(),
            Backend::Tch | Backend::Cuda => self.devices.get(1).cloned().unwrap_or_else(|| "cpu".into()),
        }
    }

    /// Points a GPU job at this worker's GPU (`--device cuda:N`): one worker per GPU on a host
    /// runs the same job.toml, each on its own GPU.
    pub fn place(&self, spec: &mut JobSpec) {
        if let Some(index) = self.gpu
            && spec.workers.device.starts_with("cuda:")
        {
            spec.workers.device = format!("cuda:{index}");
        }
    }
}

/// Defaults that must differ between workers on one host: one worker per GPU gets its own name
/// suffix and ports (`--device cuda:N`: metrics 9465+N, peers 7071+N).
#[derive(Debug, Clone, PartialEq)]
pub struct PerDevice {
    pub name_suffix: String,
    pub metrics_listen: String,
    pub peer_listen: String,
}

impl PerDevice {
    pub fn new(gpu: Option<usize>) -> Self {
        let n = gpu.unwrap_or(0);
        Self {
            name_suffix: gpu.map_or(String::new(), |n| format!("-cuda{n}")),
            metrics_listen: format!("0.0.0.0:{}", 9465 + n),
            peer_listen: format!("0.0.0.0:{}", 7071 + n),
        }
    }
}

/// GPUs visible to this process: the `nvidiaN` device nodes, narrowed by `CUDA_VISIBLE_DEVICES`
/// when it is set (an empty value or `-1` hides them all).
pub fn visible_gpus(dev_entries: &[String], cuda_visible_devices: Option<&str>) -> usize {
    let nodes = dev_entries
        .iter()
        .filter(|name| {
            name.strip_prefix("nvidia").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .count();
    match cuda_visible_devices.map(str::trim) {
        None => nodes,
        Some("" | "-1") => 0,
        Some(list) => list.split(',').take_while(|id| !id.trim().starts_with('-')).count().min(nodes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn gpus_are_the_device_nodes_narrowed_by_cuda_visible_devices() {
        let two = dev(&["null", "nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-caps"]);
        assert_eq!(visible_gpus(&two, None), 2);
        assert_eq!(visible_gpus(&two, Some("1")), 1);
        assert_eq!(visible_gpus(&two, Some("0,1,2")), 2, "never more than the nodes");
        assert_eq!(visible_gpus(&two, Some("")), 0);
        assert_eq!(visible_gpus(&two, Some("-1")), 0);
        assert_eq!(visible_gpus(&two, Some("0,-1,1")), 1, "CUDA stops at the first invalid id");
        assert_eq!(visible_gpus(&dev(&["null", "tty0"]), None), 0);
    }

    #[test]
    fn a_cuda_build_offers_cuda_only_with_a_gpu() {
        let built = [Backend::Flex, Backend::Cuda];
        let none = Host::from_parts(&built, None, 0).unwrap();
        assert_eq!((none.backends, none.devices), (vec![Backend::Flex], dev(&["cpu"])));
        let two = Host::from_parts(&built, None, 2).unwrap();
        assert_eq!(two.backends, built);
        assert_eq!(two.devices, dev(&["cpu", "cuda:0", "cuda:1"]));
        let chosen = Host::from_parts(&built, Some("cuda:1"), 2).unwrap();
        assert_eq!((chosen.devices, chosen.gpu), (dev(&["cpu", "cuda:1"]), Some(1)));
        let cpu_only = Host::from_parts(&built, Some("cpu"), 2).unwrap();
        assert_eq!(cpu_only.backends, vec![Backend::Flex], "--device cpu: no GPU work");
        let err = Host::from_parts(&[Backend::Flex], Some("cuda:0"), 1).unwrap_err();
        assert!(err.contains("`cuda` feature"), "{err}");
    }

    #[test]
    fn workers_on_one_host_differ_by_device() {
        assert_eq!(PerDevice::new(None).metrics_listen, "0.0.0.0:9465");
        let second = PerDevice::new(Some(1));
        assert_eq!(
            (second.name_suffix.as_str(), second.metrics_listen.as_str(), second.peer_listen.as_str()),
            ("-cuda1", "0.0.0.0:9466", "0.0.0.0:7072")
        );
    }

    #[test]
    fn a_gpu_job_goes_to_the_workers_own_gpu() {
        let host = Host::from_parts(&[Backend::Flex, Backend::Cuda], Some("cuda:3"), 4).unwrap();
        let mut spec = JobSpec::parse(
            "name = \"g\"\n[dataset]\ntrain = \"/t.csv\"\nvalidate = \"/v.csv\"\n[workers]\nbackend = \"cuda\"\ndevice = \"cuda:0\"\n",
            "job.toml",
        )
        .unwrap();
        host.place(&mut spec);
        assert_eq!(spec.workers.device, "cuda:3");
        assert_eq!(host.device_for(Backend::Cuda), "cuda:3");
        assert_eq!(host.device_for(Backend::Flex), "cpu");
    }
}
