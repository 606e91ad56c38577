//! The frames of a data stream between TaskManagers: `tag: u8` (0 data,
//! 1 watermark, 2 end, 3 barrier, 4 idle), `len: u32` LE, payload. Each tag
//! has its payload's length; anything else is a malformed frame.

use thiserror::Error;

use crate::checkpoint::Barrier;
use crate::task::Event;

/// Bytes of a frame's head (tag and length).
pub const HEAD: usize = 5;
/// Largest payload: a batch is far smaller; a peer's claim above it is refused.
pub const MAX_PAYLOAD: usize = super::codec::MAX_MESSAGE;

/// A frame that is not one.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// A length over [`MAX_PAYLOAD`].
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    /// A tag with a payload it cannot have.
    #[error("malformed frame: tag {tag} with {len} bytes")]
    Malformed {
        /// The tag.
        tag: u8,
        /// The payload's length.
        len: usize,
    },
}

/// The bytes of `event` as a frame.
pub fn encode(event: &Event) -> Vec<u8> {
    let mut small = [0u8; 9];
    let (tag, payload): (u8, &[u8]) = match event {
        Event::Data(batch) => (0, batch),
        Event::Watermark(w) => {
            small[..8].copy_from_slice(&w.to_le_bytes());
            (1, &small[..8])
        }
        Event::End => (2, &[]),
        Event::Barrier(b) => {
            small[..8].copy_from_slice(&b.id.to_le_bytes());
            small[8] = u8::from(b.stop);
            (3, &small[..9])
        }
        Event::Idle => (4, &[]),
    };
    let mut out = Vec::with_capacity(HEAD + payload.len());
    out.push(tag);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The tag and payload length of a frame's head.
pub fn head(head: &[u8; HEAD]) -> Result<(u8, usize), FrameError> {
    let len = u32::from_le_bytes(head[1..5].try_into().unwrap()) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge(len));
    }
    Ok((head[0], len))
}

/// The event of a frame with `tag` and `payload`.
pub fn decode(tag: u8, payload: Vec<u8>) -> Result<Event, FrameError> {
    let len = payload.len();
    Ok(match (tag, len) {
        (0, _) => Event::Data(payload),
        (1, 8) => Event::Watermark(i64::from_le_bytes(payload[..8].try_into().unwrap())),
        (2, 0) => Event::End,
        // The final checkpoint's id is no barrier's: a task acknowledges it at its end only.
        (3, 9) if payload[..8] != crate::checkpoint::FINAL_CHECKPOINT.to_le_bytes() => {
            Event::Barrier(Barrier { id: u64::from_le_bytes(payload[..8].try_into().unwrap()), stop: payload[8] != 0 })
        }
        (4, 0) => Event::Idle,
        _ => return Err(FrameError::Malformed { tag, len }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips_and_wrong_lengths_are_refused() {
        let events = [Event::Data(b"abc".to_vec()), Event::Watermark(-5), Event::End, Event::Barrier(Barrier { id: 7, stop: true }), Event::Idle];
        for e in events {
            let bytes = encode(&e);
            let (tag, len) = head(bytes[..HEAD].try_into().unwrap()).unwrap();
            assert_eq!(len, bytes.len() - HEAD);
            assert_eq!(format!("{:?}", decode(tag, bytes[HEAD..].to_vec()).unwrap()), format!("{e:?}"));
        }
        assert_eq!(decode(1, vec![0; 7]).unwrap_err(), FrameError::Malformed { tag: 1, len: 7 });
        assert_eq!(decode(9, vec![]).unwrap_err(), FrameError::Malformed { tag: 9, len: 0 });
        assert!(decode(3, [u64::MAX.to_le_bytes().as_slice(), &[0]].concat()).is_err(), "a barrier with the final checkpoint's id");
        assert_eq!(head(&[0, 0xff, 0xff, 0xff, 0xff]).unwrap_err(), FrameError::TooLarge(u32::MAX as usize));
    }
}
