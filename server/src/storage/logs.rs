//! Stored logs: compressed with deflate on the way in (before queueing, off the writer) and
//! decompressed for the cell page.

use super::{Result, StorageError};
use flate2::{read::DeflateDecoder, write::DeflateEncoder, Compression};
use std::io::{Read, Write};
use trellis_domain::log::ClippedLog;
use trellis_domain::signature::ErrorSignature;

/// A log ready to store: already clipped and compressed (done before queueing, off the writer).
pub struct LogBlob {
    pub compressed: Vec<u8>,
    pub original_bytes: i64,
    pub cut_bytes: i64,
    /// The first meaningful error of a failing log (found in the whole log, before clipping).
    pub error: Option<ErrorSignature>,
}

impl LogBlob {
    /// Compresses a clipped log for storage.
    pub fn compress(log: &ClippedLog, error: Option<ErrorSignature>) -> LogBlob {
        let mut enc =
            DeflateEncoder::new(Vec::with_capacity(log.text.len() / 4), Compression::fast());
        enc.write_all(log.text.as_bytes())
            .expect("writing to memory cannot fail");
        LogBlob {
            compressed: enc.finish().expect("writing to memory cannot fail"),
            original_bytes: log.original_bytes as i64,
            cut_bytes: log.cut_bytes as i64,
            error,
        }
    }
}

pub(super) fn decompress(bytes: &[u8]) -> Result<String> {
    let mut out = String::new();
    DeflateDecoder::new(bytes)
        .read_to_string(&mut out)
        .map_err(|e| StorageError::Corrupt(format!("stored log does not decompress: {e}")))?;
    Ok(out)
}
