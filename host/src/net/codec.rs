//! Messages on QUIC streams: a `u32` little-endian length, then JSON.

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// Largest control message; module bytes are the biggest thing sent this way.
pub const MAX_MESSAGE: usize = 256 << 20;

/// A message could not be sent or received.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The stream failed.
    #[error("stream: {0}")]
    Write(#[from] quinn::WriteError),
    /// The stream failed while reading.
    #[error("stream: {0}")]
    Read(#[from] quinn::ReadExactError),
    /// The peer sent something else than a message of the expected type.
    #[error("bad message: {0}")]
    Decode(String),
    /// A length over [`MAX_MESSAGE`].
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
}

/// Writes one message.
pub async fn write<T: Serialize>(send: &mut quinn::SendStream, message: &T) -> Result<(), CodecError> {
    let body = serde_json::to_vec(message).map_err(|e| CodecError::Decode(e.to_string()))?;
    if body.len() > MAX_MESSAGE {
        return Err(CodecError::TooLarge(body.len()));
    }
    send.write_all(&(body.len() as u32).to_le_bytes()).await?;
    send.write_all(&body).await?;
    Ok(())
}

/// Largest message a peer without a certificate may send: an enrolment request.
pub const MAX_ANONYMOUS: usize = 16 << 10;

/// Reads one message; `None` if the stream ended cleanly before it.
pub async fn read<T: DeserializeOwned>(recv: &mut quinn::RecvStream) -> Result<Option<T>, CodecError> {
    read_within(recv, MAX_MESSAGE).await
}

/// Reads one message of at most `max` bytes. Its body is read as it arrives,
/// so a peer claiming a big length gets memory only for what it sends.
pub async fn read_within<T: DeserializeOwned>(recv: &mut quinn::RecvStream, max: usize) -> Result<Option<T>, CodecError> {
    const PIECE: usize = 1 << 20;
    let mut len = [0u8; 4];
    match recv.read_exact(&mut len).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > max.min(MAX_MESSAGE) {
        return Err(CodecError::TooLarge(len));
    }
    let mut body = Vec::with_capacity(len.min(PIECE));
    while body.len() < len {
        let start = body.len();
        body.resize(start + (len - start).min(PIECE), 0);
        recv.read_exact(&mut body[start..]).await?;
    }
    serde_json::from_slice(&body).map(Some).map_err(|e| CodecError::Decode(e.to_string()))
}

/// Sends `request` on a new bidirectional stream and reads the reply.
pub async fn call<Q: Serialize, R: DeserializeOwned>(conn: &quinn::Connection, request: &Q) -> anyhow::Result<R> {
    let (mut send, mut recv) = conn.open_bi().await?;
    write(&mut send, request).await?;
    send.finish()?;
    read(&mut recv).await?.ok_or_else(|| anyhow::anyhow!("peer closed the stream without replying"))
}
