//! Reading a component from disk, checked before it is read whole: a wrong path in a job
//! file or on the command line must not read through a device or a large file, nor send
//! some other file to a cluster.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{check_header, LoadError};

/// The largest component file read (the biggest built here, a Python one, is ~19 MB;
/// a cluster's own bound is the JobManager's `--max-upload`).
pub const MAX_COMPONENT_FILE: u64 = 1 << 30;

/// Why a component file could not be read.
#[derive(Debug, Error)]
pub enum ReadError {
    /// The file cannot be opened or read.
    #[error("cannot read component {path}: {cause}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        cause: std::io::Error,
    },
    /// A directory, device, pipe…
    #[error("component {0} is not a regular file")]
    NotFile(PathBuf),
    /// Larger than [`MAX_COMPONENT_FILE`].
    #[error("component {path} is {size} bytes; a component file is at most 1 GiB")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// Not a component.
    #[error(transparent)]
    NotComponent(#[from] LoadError),
}

/// Reads a component file: its name (for messages and uploads) and bytes.
pub fn read_component(path: &Path) -> Result<(String, Vec<u8>), ReadError> {
    let io = |cause| ReadError::Io { path: path.into(), cause };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(ReadError::NotFile(path.into()));
    }
    if metadata.len() > MAX_COMPONENT_FILE {
        return Err(ReadError::TooLarge { path: path.into(), size: metadata.len() });
    }
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    (&mut file).take(8).read_to_end(&mut bytes).map_err(io)?;
    check_header(&name, &bytes)?;
    file.take(MAX_COMPONENT_FILE).read_to_end(&mut bytes).map_err(io)?;
    Ok((name, bytes))
}
