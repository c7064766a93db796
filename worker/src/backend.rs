//! Compute devices: burn's pure-Rust `flex` CPU backend by default; libtorch (CPU or CUDA)
//! through burn-tch when built with the `tch` feature; burn's CUDA backend (CubeCL) when built
//! with `cuda`. The CUDA build needs no toolkit: the driver and NVRTC are loaded at run time.

use burn::tensor::Device;

use crate::error::{Error, Result};
use crate::job::{Backend, parse_device};

/// The job backends this build can run.
pub fn built_backends() -> Vec<Backend> {
    let mut backends = vec![Backend::Flex];
    if cfg!(feature = "tch") {
        backends.push(Backend::Tch);
    }
    if cfg!(feature = "cuda") {
        backends.push(Backend::Cuda);
    }
    backends
}

/// The device to train on (with autodiff) for a backend and a device string (`cpu`, `cuda:N`).
pub fn training_device(backend: Backend, device: &str) -> Result<Device> {
    let cuda = parse_device(device).map_err(Error::InvalidJob)?;
    let device = match (backend, cuda) {
        (Backend::Flex, None) => Device::flex(),
        (Backend::Flex, Some(_)) => {
            return Err(Error::InvalidJob(
                "workers.device: the flex backend runs on `cpu` only; use backend = \"cuda\" for a GPU".into(),
            ));
        }
        (Backend::Tch, cuda) => libtorch(cuda)?,
        (Backend::Cuda, Some(index)) => cubecl_cuda(index)?,
        (Backend::Cuda, None) => {
            return Err(Error::InvalidJob("workers.device: the cuda backend runs on `cuda:N`".into()));
        }
    };
    Ok(device.autodiff())
}

#[cfg(feature = "tch")]
#[allow(deprecated)] // burn-tch is deprecated in 0.22 and still the libtorch path we promise.
fn libtorch(cuda: Option<usize>) -> Result<Device> {
    Ok(match cuda {
        None => Device::libtorch(),
        Some(index) => Device::libtorch_cuda(index),
    })
}

#[cfg(not(feature = "tch"))]
fn libtorch(_cuda: Option<usize>) -> Result<Device> {
    Err(Error::Unsupported(
        "workers.backend = \"tch\" needs a build with the `tch` feature (see README: Backends)".into(),
    ))
}

#[cfg(feature = "cuda")]
fn cubecl_cuda(index: usize) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cubecl_cuda(_index: usize) -> Result<Device> {
    Err(Error::Unsupported(
        "workers.backend = \"cuda\" needs a build with the `cuda` feature (see README: Backends)".into(),
    ))
}
