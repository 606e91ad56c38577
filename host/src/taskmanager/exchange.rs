//! Records between TaskManagers: one QUIC connection per TaskManager pair,
//! one unidirectional stream per channel. A stream starts with a
//! [`ChannelHeader`] and carries events framed as `tag: u8` (0 data,
//! 1 watermark, 2 end, 3 barrier, 4 idle), `len: u32` LE, payload. Back-pressure is QUIC's flow
//! control: a full gate stops the reader, the stream window fills, and the
//! writer's `write_all` waits.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::TaskManager;
use crate::net::{self, codec, frame};
use crate::protocol::ChannelHeader;
use crate::task::{Event, JobSignals, RemoteSend, TaskError, CANCEL_POLL};

/// How long a data stream may wait for its gate (the peer's deploy racing ours).
const GATE_WAIT: Duration = Duration::from_secs(30);

/// Who feeds a channel of a local gate.
pub(super) struct Expected {
    /// The identity of the TaskManager its producer was deployed to: the peer's certificate must name it.
    pub producer: String,
    /// That TaskManager's data address: the stream must come from it.
    pub addr: SocketAddr,
    /// Whether a stream took the channel.
    pub claimed: bool,
}

/// A channel to a gate on another TaskManager.
pub(super) struct QuicChannel {
    tm: Arc<TaskManager>,
    peer: SocketAddr,
    /// The identity of the TaskManager the consumer was deployed to: its certificate must name it.
    identity: String,
    header: ChannelHeader,
    /// Opened on the first send.
    stream: Option<quinn::SendStream>,
}

impl QuicChannel {
    pub(super) fn new(tm: Arc<TaskManager>, peer: SocketAddr, identity: String, header: ChannelHeader) -> Self {
        QuicChannel { tm, peer, identity, header, stream: None }
    }

}

/// A failure of the data channel to `peer` feeding `header`'s gate.
fn channel_error(peer: SocketAddr, header: &ChannelHeader, e: impl std::fmt::Display) -> TaskError {
    TaskError::Io {
        what: format!("data channel to {peer} (task {} subtask {})", header.chain, header.subtask + 1),
        source: std::io::Error::other(e.to_string()),
    }
}

impl RemoteSend for QuicChannel {
    fn send(&mut self, event: Event, signals: &JobSignals) -> Result<(), TaskError> {
        let bytes = frame::encode(&event);
        let end = matches!(event, Event::End);
        let handle = self.tm.handle.clone();
        let (peer, header) = (self.peer, &self.header);
        let error = |e: &dyn std::fmt::Display| channel_error(peer, header, e);
        handle.block_on(async {
            if self.stream.is_none() {
                let conn = self.tm.peer(peer, &self.identity).await.map_err(|e| error(&e))?;
                let mut stream = conn.open_uni().await.map_err(|e| error(&e))?;
                codec::write(&mut stream, header).await.map_err(|e| error(&e))?;
                self.stream = Some(stream);
            }
            let stream = self.stream.as_mut().unwrap();
            let mut write = pin!(stream.write_all(&bytes));
            loop {
                tokio::select! {
                    r = &mut write => break r.map_err(|e| error(&e)),
                    _ = tokio::time::sleep(CANCEL_POLL) => if signals.cancelled() {
                        return Err(TaskError::Cancelled);
                    }
                }
            }
        })?;
        if end {
            if let Some(mut s) = self.stream.take() {
                let _ = s.finish();
            }
        }
        Ok(())
    }
}

/// Accepts peer connections and their data streams.
pub(super) async fn accept(tm: Arc<TaskManager>) {
    while let Some(incoming) = tm.endpoint.accept().await {
        let tm = tm.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => return tracing::warn!(%remote, "refused a cluster connection: {e}"),
            };
            // Data comes from TaskManagers only: the JobManager's certificate sends none.
            let Some(net::Role::TaskManager(peer)) = net::peer_role(&conn) else {
                tracing::warn!(%remote, "refused a cluster connection: its certificate is not a TaskManager's");
                return conn.close(crate::protocol::CLOSE_NOT_A_TASKMANAGER.into(), b"not a TaskManager certificate");
            };
            let peer: Arc<str> = peer.into();
            while let Ok(recv) = conn.accept_uni().await {
                let (tm, peer) = (tm.clone(), peer.clone());
                tokio::spawn(async move {
                    match admit(&tm, &peer, remote, recv).await {
                        Ok(admitted) => {
                            if let Err(e) = serve_channel(admitted).await {
                                tracing::warn!(%remote, "data stream closed: {e:#}");
                            }
                        }
                        Err(e) => tracing::warn!(%remote, "data stream refused: {e:#}"),
                    }
                });
            }
        });
    }
}

/// Largest channel header: a job id and three numbers.
const MAX_HEADER: usize = 1024;
/// Data frames are read in pieces of at most this much: a frame's claimed
/// length is not allocated before its bytes arrive.
const READ_PIECE: usize = 1 << 20;

/// A data stream whose header names a channel this TaskManager expects from that peer.
struct Admitted {
    recv: quinn::RecvStream,
    header: ChannelHeader,
    tx: crate::task::GateQueue,
    signals: Arc<JobSignals>,
}

/// Reads a stream's header and admits it if it feeds a channel of a local
/// gate of a deployed attempt, from the TaskManager its producer was deployed
/// to (`peer`, by its certificate, at its data address), and no other stream
/// took that channel. Waits (asynchronously) for a deployment racing the peer's.
async fn admit(tm: &TaskManager, peer: &str, remote: SocketAddr, mut recv: quinn::RecvStream) -> anyhow::Result<Admitted> {
    let header: ChannelHeader = tokio::time::timeout(GATE_WAIT, read_header(&mut recv))
        .await
        .map_err(|_| anyhow::anyhow!("no header within {GATE_WAIT:?}"))??;
    let key = (header.job.clone(), header.chain, header.subtask, header.channel);
    let started = Instant::now();
    loop {
        let feeder = tm.expected.lock().unwrap().get(&key).map(|e| (e.producer.clone(), e.addr, e.claimed));
        if let Some((producer, addr, claimed)) = feeder {
            anyhow::ensure!(producer == peer, "channel {key:?} is fed from {producer}, not from {peer}");
            anyhow::ensure!(
                addr.ip().to_canonical() == remote.ip().to_canonical() && addr.port() == remote.port(),
                "channel {key:?} is fed from {addr}, not from {remote}"
            );
            // Once: a second stream for the channel would interleave with the first.
            anyhow::ensure!(!claimed, "channel {key:?} is already fed");
            let gate = tm.gates.lock().unwrap().get(&(header.job.clone(), header.chain, header.subtask)).cloned();
            if let (Some(tx), Some(signals)) = (gate, tm.signals(&header.job)) {
                if let Some(entry) = tm.expected.lock().unwrap().get_mut(&key).filter(|e| !e.claimed) {
                    entry.claimed = true;
                    return Ok(Admitted { recv, header, tx, signals });
                }
                anyhow::bail!("channel {key:?} is already fed");
            }
        }
        anyhow::ensure!(started.elapsed() < GATE_WAIT, "no channel {key:?} deployed here");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A channel header: a length of at most [`MAX_HEADER`], then JSON.
async fn read_header(recv: &mut quinn::RecvStream) -> anyhow::Result<ChannelHeader> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    anyhow::ensure!(len <= MAX_HEADER, "header of {len} bytes");
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

/// Reads `len` bytes, growing the buffer as they arrive.
async fn read_payload(recv: &mut quinn::RecvStream, len: usize) -> anyhow::Result<Vec<u8>> {
    let mut payload = Vec::with_capacity(len.min(READ_PIECE));
    while payload.len() < len {
        let start = payload.len();
        payload.resize(start + (len - start).min(READ_PIECE), 0);
        recv.read_exact(&mut payload[start..]).await?;
    }
    Ok(payload)
}

/// Moves one stream's events into its gate, waiting (without a thread) while the gate is full.
/// A malformed frame closes the stream (and fails the job's tasks waiting on it).
async fn serve_channel(admitted: Admitted) -> anyhow::Result<()> {
    let Admitted { mut recv, header, tx, signals } = admitted;
    loop {
        let mut head = [0u8; frame::HEAD];
        recv.read_exact(&mut head).await?;
        let (tag, len) = frame::head(&head)?;
        let payload = read_payload(&mut recv, len).await?;
        let event = frame::decode(tag, payload)?;
        let end = matches!(event, Event::End);
        tx.send_async(header.channel, event, &signals).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if end {
            return Ok(());
        }
    }
}
