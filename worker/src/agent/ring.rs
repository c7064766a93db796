//! Ring all-reduce between workers: reduce-scatter then all-gather over N-1 hops each, so each
//! worker sends and receives 2(N-1)/N of the gradient per step, whatever N (bandwidth-optimal).
//!
//! Each worker serves `PeerService.Send` on its peer address; incoming pieces land in a
//! [`Mailbox`] keyed by (job, step, round, phase), so a peer that runs ahead simply leaves its
//! pieces waiting. The segment arithmetic ([`segment`], [`schedule`]) is plain and tested.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use facetrain_proto::auth::AttachToken;
use facetrain_proto::internal::{self, peer_service_client::PeerServiceClient, peer_service_server::PeerService};
use facetrain_proto::job::GradientDtype;
use facetrain_proto::{MAX_MESSAGE_BYTES, decode_gradients, encode_gradients};
use tokio::sync::Notify;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use super::security::AgentSecurity;
use crate::data::shard::share;

/// Elements per message on the wire.
const PIECE_ELEMENTS: usize = 256 * 1024;

type Key = (String, u64, u64, u32);
/// Received pieces: (offset in elements, wire bytes).
type Pieces = Vec<(u64, Vec<u8>)>;

/// Pieces received from the previous worker in the ring, until the ring algorithm takes them.
#[derive(Default)]
pub struct Mailbox {
    pieces: Mutex<HashMap<Key, Pieces>>,
    arrived: Notify,
}

impl Mailbox {
    fn deliver(&self, chunk: internal::RingChunk) {
        let key = (chunk.job_id, chunk.step, chunk.round, chunk.phase);
        self.pieces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .push((chunk.offset, chunk.data));
        self.arrived.notify_waiters();
    }

    /// Waits for `bytes` bytes of pieces under `key`.
    async fn take(&self, key: &Key, bytes: usize) -> Pieces {
        loop {
            let notified = self.arrived.notified();
            {
                let mut pieces = self.pieces.lock().unwrap_or_else(PoisonError::into_inner);
                let ready = pieces.get(key).is_some_and(|p| p.iter().map(|(_, d)| d.len()).sum::<usize>() >= bytes);
                // Only a complete set leaves the mailbox: pieces taken early would be lost.
                if ready && let Some(pieces) = pieces.remove(key) {
                    return pieces;
                }
            }
            notified.await;
        }
    }

    /// Drops pieces of earlier steps or abandoned rounds of `job`.
    fn forget_before(&self, job: &str, step: u64, round: u64) {
        self.pieces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(j, s, r, _), _| j != job || (*s, *r) >= (step, round));
    }
}

/// The gRPC face of a [`Mailbox`].
pub struct PeerApi {
    pub mailbox: Arc<Mailbox>,
}

#[tonic::async_trait]
impl PeerService for PeerApi {
    async fn send(&self, request: Request<internal::RingChunk>) -> Result<Response<internal::RingAck>, Status> {
        self.mailbox.deliver(request.into_inner());
        Ok(Response::new(internal::RingAck {}))
    }
}

/// Segment `index` of a vector of `len` elements split into `world` parts.
pub fn segment(len: usize, index: usize, world: usize) -> std::ops::Range<usize> {
    share(len, index, world)
}

/// For each of the 2(N-1) phases: (segment this rank sends, segment it receives, add or copy).
pub fn schedule(rank: usize, world: usize) -> Vec<(usize, usize, bool)> {
    let n = world;
    let hops = n.saturating_sub(1);
    let reduce = (0..hops).map(|k| ((rank + n - k) % n, (rank + 2 * n - k - 1) % n, true));
    let gather = (0..hops).map(|k| ((rank + 1 + n - k) % n, (rank + n - k) % n, false));
    reduce.chain(gather).collect()
}

/// One worker's end of the ring for one job.
pub struct Ring {
    pub mailbox: Arc<Mailbox>,
    clients: Mutex<HashMap<String, PeerClient>>,
    security: AgentSecurity,
}

type PeerClient = PeerServiceClient<InterceptedService<Channel, AttachToken>>;

impl Ring {
    pub fn new(mailbox: Arc<Mailbox>, security: AgentSecurity) -> Self {
        Self { mailbox, clients: Mutex::new(HashMap::new()), security }
    }

    async fn client(&self, address: &str) -> Result<PeerClient, Status> {
        if let Some(client) = self.clients.lock().unwrap_or_else(PoisonError::into_inner).get(address) {
            return Ok(client.clone());
        }
        let channel = self
            .security
            .peer_endpoint(address)
            .map_err(|e| Status::invalid_argument(format!("peer {address}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(3))
            .initial_stream_window_size(facetrain_proto::STREAM_WINDOW_BYTES)
            .initial_connection_window_size(facetrain_proto::CONNECTION_WINDOW_BYTES)
            .max_frame_size(facetrain_proto::MAX_FRAME_BYTES)
            .connect()
            .await
            .map_err(|e| Status::aborted(format!("ring peer {address} unreachable: {e}")))?;
        let client = PeerServiceClient::with_interceptor(channel, self.security.attach_token())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        self.clients.lock().unwrap_or_else(PoisonError::into_inner).insert(address.to_string(), client.clone());
        Ok(client)
    }

    /// Sums `values` across the ring in place; returns the bytes this worker sent.
    pub async fn all_reduce(
        &self,
        values: &mut [f32],
        task: &internal::TrainStep,
        dtype: GradientDtype,
    ) -> Result<u64, Status> {
        let (rank, world) = (task.rank as usize, task.world as usize);
        if world < 2 {
            return Ok(0);
        }
        if task.peers.len() != world {
            return Err(Status::failed_precondition(format!(
                "ring of {world} workers but {} peer addresses",
                task.peers.len()
            )));
        }
        self.mailbox.forget_before(&task.job_id, task.step, task.round);
        let next = self.client(&task.peers[(rank + 1) % world]).await?;
        let element_bytes = facetrain_proto::gradient_element_bytes(dtype);
        let mut sent = 0u64;
        for (phase, (send, receive, add)) in schedule(rank, world).into_iter().enumerate() {
            let outgoing = segment(values.len(), send, world);
            if phase == world - 1 && dtype != GradientDtype::F32 {
                // The fully reduced segment this worker owns goes out in the wire dtype: keep the
                // same rounded values here, or this replica would differ from the others.
                let rounded = decode_gradients(&encode_gradients(&values[outgoing.clone()], dtype), dtype)
                    .ok_or_else(|| Status::internal("a gradient segment did not decode from its own encoding"))?;
                values[outgoing.clone()].copy_from_slice(&rounded);
            }
            let sending = async {
                let mut next = next.clone();
                let mut bytes = 0u64;
                for start in (outgoing.start..outgoing.end).step_by(PIECE_ELEMENTS) {
                    let end = (start + PIECE_ELEMENTS).min(outgoing.end);
                    let data = encode_gradients(&values[start..end], dtype);
                    bytes += data.len() as u64;
                    let chunk = internal::RingChunk {
                        job_id: task.job_id.clone(),
                        step: task.step,
                        round: task.round,
                        phase: phase as u32,
                        offset: start as u64,
                        data,
                    };
                    // A peer that cannot be reached is a lost member: the round is over, not the
                    // coordinator; the worker waits for the redo the coordinator will hand out.
                    next.send(chunk)
                        .await
                        .map_err(|e| Status::aborted(format!("ring peer unreachable: {}", e.message())))?;
                }
                Ok::<u64, Status>(bytes)
            };
            let incoming = segment(values.len(), receive, world);
            let key = (task.job_id.clone(), task.step, task.round, phase as u32);
            let receiving = self.mailbox.take(&key, incoming.len() * element_bytes);
            let (bytes, pieces) = tokio::join!(sending, receiving);
            sent += bytes?;
            for (offset, data) in pieces {
                let piece = decode_gradients(&data, dtype)
                    .ok_or_else(|| Status::data_loss("ring piece is not whole values"))?;
                let start = offset as usize;
                if start < incoming.start || start + piece.len() > incoming.end {
                    return Err(Status::data_loss(format!("ring piece at {start} outside segment {incoming:?}")));
                }
                let slots = &mut values[start..start + piece.len()];
                if add {
                    slots.iter_mut().zip(&piece).for_each(|(v, p)| *v += p);
                } else {
                    slots.copy_from_slice(&piece);
                }
            }
        }
        Ok(sent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(offset: u64, bytes: usize) -> internal::RingChunk {
        internal::RingChunk { job_id: "j".into(), step: 1, round: 0, phase: 0, offset, data: vec![7; bytes] }
    }

    /// A segment larger than one chunk arrives in pieces: waiting for it must keep the early ones.
    /// (A version that removed the pieces before checking they were all there lost them, and a
    /// ring job with a gradient over one chunk, such as the tutorial model's 12 MB, hung.)
    #[tokio::test]
    async fn a_segment_in_several_pieces_is_taken_whole() {
        let mailbox = Arc::new(Mailbox::default());
        let key: Key = ("j".into(), 1, 0, 0);
        mailbox.deliver(chunk(0, 100));
        let taker = tokio::spawn({
            let mailbox = mailbox.clone();
            let key = key.clone();
            async move { mailbox.take(&key, 300).await }
        });
        tokio::task::yield_now().await;
        mailbox.deliver(chunk(25, 100));
        tokio::task::yield_now().await;
        mailbox.deliver(chunk(50, 100));
        let pieces = tokio::time::timeout(std::time::Duration::from_secs(5), taker).await.unwrap().unwrap();
        let mut offsets: Vec<u64> = pieces.iter().map(|(offset, _)| *offset).collect();
        offsets.sort();
        assert_eq!(offsets, [0, 25, 50]);
    }

    /// Simulates the schedule on N in-memory workers and checks every one ends with the sum.
    #[test]
    fn the_schedule_leaves_every_worker_with_the_sum() {
        for world in 2..=5 {
            let len = 13;
            let mut replicas: Vec<Vec<f32>> =
                (0..world).map(|r| (0..len).map(|i| (r * 100 + i) as f32).collect()).collect();
            let expected: Vec<f32> = (0..len).map(|i| (0..world).map(|r| (r * 100 + i) as f32).sum()).collect();
            for phase in 0..2 * (world - 1) {
                let messages: Vec<(usize, Vec<f32>)> = (0..world)
                    .map(|rank| {
                        let (send, _, _) = schedule(rank, world)[phase];
                        (send, replicas[rank][segment(len, send, world)].to_vec())
                    })
                    .collect();
                for rank in 0..world {
                    let (_, receive, add) = schedule(rank, world)[phase];
                    let (segment_index, data) = &messages[(rank + world - 1) % world];
                    assert_eq!(*segment_index, receive, "rank {rank} phase {phase}");
                    let range = segment(len, receive, world);
                    for (slot, value) in replicas[rank][range].iter_mut().zip(data) {
                        if add { *slot += value } else { *slot = *value }
                    }
                }
            }
            for replica in &replicas {
                assert_eq!(replica, &expected, "world {world}");
            }
        }
    }

    #[test]
    fn each_worker_sends_two_n_minus_one_over_n_of_the_vector() {
        let (len, world) = (1000, 4);
        let sent: usize = schedule(1, world).iter().map(|(send, _, _)| segment(len, *send, world).len()).sum();
        assert_eq!(sent, 2 * (world - 1) * len / world);
    }
}
