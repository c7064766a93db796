//! The contracts of facetrain: the gRPC API (`facetrain.v1`: generated types and services, the
//! descriptor set for reflection, error codes mapped to gRPC status codes) and the job file
//! (`job.toml`) that travels inside it.

pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("facetrain.v1");
}

mod error;
pub mod job;

pub use error::ErrorCode;

/// Encoded `FileDescriptorSet` of every facetrain proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/facetrain_descriptor.bin"));

/// gRPC message limit on both sides: gradients and states travel in chunks far below it.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Elements of f32 per gradient chunk (1 MiB of payload).
pub const GRADIENT_CHUNK_ELEMENTS: usize = 256 * 1024;

/// Bytes per state chunk.
pub const STATE_CHUNK_BYTES: usize = 1024 * 1024;

/// Encodes f32 values as little-endian bytes.
pub fn f32_to_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes little-endian f32 bytes; `None` when the length is not a multiple of four.
pub fn bytes_to_f32(bytes: &[u8]) -> Option<Vec<f32>> {
    bytes
        .len()
        .is_multiple_of(4)
        .then(|| bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_bytes_round_trip_and_reject_ragged_input() {
        let values = [1.5f32, -0.0, f32::MAX, 3.25e-8];
        assert_eq!(bytes_to_f32(&f32_to_bytes(&values)).unwrap(), values);
        assert!(bytes_to_f32(&[0, 1, 2]).is_none());
    }
}
