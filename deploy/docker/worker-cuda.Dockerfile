# syntax=docker/dockerfile:1.7
#
# facetrain-worker with burn's CUDA backend (CubeCL):
#   cargo build --release -p facetrain-worker --features facetrain-worker/cuda
# The build needs no CUDA toolkit: cudarc loads the driver (libcuda, injected by the node) and
# NVRTC (libnvrtc, from the CUDA runtime image below) at run time. CUDARC_CUDA_VERSION pins the
# driver API the worker is compiled against to the runtime image's CUDA, so the kernels NVRTC
# compiles and the driver calls agree; the node's driver must support that CUDA version.
#
#   docker buildx build -f deploy/docker/worker-cuda.Dockerfile -t facetrain-worker-cuda:dev .
# BuildKit reads worker-cuda.Dockerfile.dockerignore next to this file.

ARG RUST_VERSION=1.95
ARG DEBIAN_CODENAME=bookworm
ARG BUSYBOX_VERSION=1.37.0
# The driver API version cudarc compiles against: the runtime image's CUDA (12.8, below).
ARG CUDARC_CUDA_VERSION=12080

# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_CODENAME} AS build
ARG CUDARC_CUDA_VERSION
ENV CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION}
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=facetrain-target-cuda,sharing=locked \
    cargo build --release --locked -p facetrain-worker --features facetrain-worker/cuda \
 && install -D -m 0755 -t /out/bin target/release/facetrain-worker

FROM busybox:${BUSYBOX_VERSION}-musl AS busybox

# ---------------------------------------------------------------------------------------------
# NVIDIA's runtime image for NVRTC (CubeCL compiles its kernels at run time); the driver (libcuda)
# is injected by the node (GKE mounts it under /usr/local/nvidia, the NVIDIA container toolkit
# elsewhere).
# Keep in step with CUDARC_CUDA_VERSION above.
FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04 AS worker-cuda
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="facetrain-worker-cuda" \
      org.opencontainers.image.description="facetrain worker, burn's CUDA backend (CubeCL)" \
      org.opencontainers.image.vendor="facetrain" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/facetrain/facetrain" \
      org.opencontainers.image.documentation="https://github.com/facetrain/facetrain/blob/main/docs/operations.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="nvidia/cuda:12.8.1-runtime-ubuntu24.04"
# Same UID/GID as the distroless images so one securityContext fits all workers.
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot
COPY --from=build /out/bin/facetrain-worker /usr/local/bin/
COPY --from=busybox /bin/busybox /usr/local/bin/busybox
ENV RUST_LOG=info \
    FACETRAIN_LOG_FORMAT=json \
    FACETRAIN_COORDINATOR=http://facetrain-coordinator:7070 \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/cuda/lib64 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    CUDA_CACHE_PATH=/tmp/cuda-cache
USER 65532:65532
STOPSIGNAL SIGTERM
# 9465 metrics; 7071 the ring all-reduce peer port (gRPC facetrain.internal.v1.PeerService), as in the CPU
# worker image (FACETRAIN_PEER_ADVERTISE: the address other workers dial).
EXPOSE 9465 7071
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/busybox", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:9465/metrics"]
ENTRYPOINT ["/usr/local/bin/facetrain-worker"]
# The worker offers `cuda` when it sees a GPU (one per pod: cuda:0) and `flex` always; a GPU job
# sets `[workers] backend = "cuda"`, `device = "cuda:0"` in its job.toml.
CMD ["--metrics-listen=0.0.0.0:9465"]
