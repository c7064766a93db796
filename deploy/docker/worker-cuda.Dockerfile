# syntax=docker/dockerfile:1.7
#
# facetrain-worker with the libtorch (`tch`) backend on CUDA:
#   cargo build --release -p facetrain-worker --features facetrain-worker/tch
# libtorch comes from the PyTorch wheel (LIBTORCH_USE_PYTORCH=1), so the version the worker is
# compiled against and the one it loads at run time are the same files.
#
#   docker buildx build -f deploy/docker/worker-cuda.Dockerfile -t facetrain-worker-cuda:dev .
# BuildKit reads worker-cuda.Dockerfile.dockerignore next to this file.

ARG RUST_VERSION=1.95
ARG DEBIAN_CODENAME=bookworm
ARG BUSYBOX_VERSION=1.37.0
# Keep TORCH_VERSION in step with the tch crate in Cargo.lock (tch checks the libtorch version at build time).
ARG TORCH_VERSION=2.9.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128

# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_CODENAME} AS build
ARG TORCH_VERSION
ARG TORCH_INDEX_URL
# g++ compiles torch-sys's C++ shim; python3 is only used to locate and install torch.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/torch \
 && /opt/torch/bin/pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
ENV LIBTORCH_USE_PYTORCH=1 \
    PYTHON_SYS_EXECUTABLE=/opt/torch/bin/python \
    PATH=/opt/torch/bin:${PATH}
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,id=facetrain-target-cuda,sharing=locked \
    cargo build --release --locked -p facetrain-worker --features facetrain-worker/tch \
 && install -D -m 0755 -t /out/bin target/release/facetrain-worker
# The runtime needs the shared libraries, not Python. torch/lib and the nvidia/* wheels are copied
# side by side because libtorch_cuda.so finds cuBLAS/cuDNN/NCCL through $ORIGIN/../../nvidia/... RUNPATHs.
RUN site="$(/opt/torch/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && mkdir -p /out/libtorch/torch \
 && cp -a "${site}/torch/lib" /out/libtorch/torch/lib \
 && cp -a "${site}/nvidia" /out/libtorch/nvidia

FROM busybox:${BUSYBOX_VERSION}-musl AS busybox

# ---------------------------------------------------------------------------------------------
# debian-slim rather than distroless here: cuDNN needs zlib, which distroless/cc does not ship.
# CUDA user-space comes from the wheels; the driver (libcuda) is injected by the node
# (GKE mounts it under /usr/local/nvidia, the NVIDIA container toolkit elsewhere).
FROM debian:${DEBIAN_CODENAME}-slim AS worker-cuda
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=unknown
ARG TORCH_VERSION
LABEL org.opencontainers.image.title="facetrain-worker-cuda" \
      org.opencontainers.image.description="facetrain worker, libtorch ${TORCH_VERSION} (tch backend) on CUDA" \
      org.opencontainers.image.vendor="facetrain" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/facetrain/facetrain" \
      org.opencontainers.image.documentation="https://github.com/facetrain/facetrain/blob/main/docs/operations.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="debian:${DEBIAN_CODENAME}-slim"
# Same UID/GID as the distroless images so one securityContext fits all workers.
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin nonroot
COPY --from=build /out/libtorch /opt/libtorch
COPY --from=build /out/bin/facetrain-worker /usr/local/bin/
COPY --from=busybox /bin/busybox /usr/local/bin/busybox
ENV RUST_LOG=info \
    FACETRAIN_LOG_FORMAT=json \
    FACETRAIN_COORDINATOR=http://facetrain-coordinator:7070 \
    LD_LIBRARY_PATH=/opt/libtorch/torch/lib:/usr/local/nvidia/lib64 \
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
# No backend/device flags: a GPU job sets `[workers] backend = "tch"`, `device = "cuda:0"` in its
# job.toml (this build also runs `flex`/`cpu` jobs, on the CPU).
CMD ["--metrics-listen=0.0.0.0:9465"]
