//! The witness: every chained checkpoint, appended as one JSON line to a file outside the
//! database (`<data_dir>/audit-witness.log`, or `audit.witness_file`), with `O_APPEND` and an
//! fsync before the checkpoint row commits. Someone who can write the database but not this
//! host's files cannot make the database forget a checkpoint the witness holds: the daemon
//! refuses to sign on, and `cloudca audit verify` reports it.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::store::audit::Checkpoint;

/// Why a witness file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The file does not exist.
    #[error("witness file {0} does not exist")]
    Missing(PathBuf),
    /// Opening, reading, writing or syncing failed.
    #[error("witness file {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// A line is not a checkpoint record.
    #[error("witness file {path}, line {line}: not a checkpoint record ({reason})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number (0: the last line, read from the end).
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// One witness line: a chained checkpoint with its signature (base64).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    counter: i64,
    prev_hash: String,
    seq: i64,
    hash: String,
    at: i64,
    signature: String,
}

/// The JSON line for a chained checkpoint (no trailing newline).
pub fn line(c: &Checkpoint) -> String {
    let line = Line {
        counter: c.counter.unwrap_or(0),
        prev_hash: c.prev_hash.clone().unwrap_or_default(),
        seq: c.seq,
        hash: c.hash.clone(),
        at: c.at,
        signature: base64::engine::general_purpose::STANDARD.encode(&c.signature),
    };
    serde_json::to_string(&line).unwrap_or_default()
}

fn parse(path: &Path, number: usize, text: &str) -> Result<Checkpoint, WitnessError> {
    let corrupt = |reason: String| WitnessError::Corrupt { path: path.to_path_buf(), line: number, reason };
    let l: Line = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
    let signature =
        base64::engine::general_purpose::STANDARD.decode(&l.signature).map_err(|e| corrupt(e.to_string()))?;
    Ok(Checkpoint {
        counter: Some(l.counter),
        prev_hash: Some(l.prev_hash),
        seq: l.seq,
        hash: l.hash,
        at: l.at,
        signature,
    })
}

fn io(path: &Path, e: std::io::Error) -> WitnessError {
    if e.kind() == std::io::ErrorKind::NotFound {
        WitnessError::Missing(path.to_path_buf())
    } else {
        WitnessError::Io { path: path.to_path_buf(), reason: e.to_string() }
    }
}

/// Appends one checkpoint (one `write` of the whole line, `O_APPEND`, file mode 0600) and
/// fsyncs it; a file created now also gets its folder fsynced, so the name survives a crash.
pub fn append(path: &Path, c: &Checkpoint) -> Result<(), WitnessError> {
    use std::os::unix::fs::OpenOptionsExt;
    let existed = path.exists();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| WitnessError::Io { path: path.to_path_buf(), reason: e.to_string() })?;
    let text = format!("{}\n", line(c));
    let failed = |e: std::io::Error| WitnessError::Io { path: path.to_path_buf(), reason: e.to_string() };
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    if !existed {
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(failed)?;
        }
    }
    Ok(())
}

/// Whether the file can be opened for appending (created if absent): checked before the HSM
/// signs, so an unwritable witness stops the round before anything is signed.
pub fn writable(path: &Path) -> Result<(), WitnessError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| WitnessError::Io { path: path.to_path_buf(), reason: e.to_string() })
}

/// Every checkpoint in the file, in order.
pub fn read_all(path: &Path) -> Result<Vec<Checkpoint>, WitnessError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()).map(|(i, l)| parse(path, i + 1, l)).collect()
}

/// The last checkpoint in the file, read from its end (the file grows by one line a minute;
/// only its tail is read). `None` when the file does not exist or is empty.
pub fn last(path: &Path) -> Result<Option<Checkpoint>, WitnessError> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path, e)),
    };
    let len = file.metadata().map_err(|e| io(path, e))?.len();
    let start = len.saturating_sub(16 * 1024);
    file.seek(SeekFrom::Start(start)).map_err(|e| io(path, e))?;
    let mut tail = String::new();
    file.read_to_string(&mut tail).map_err(|e| io(path, e))?;
    if !tail.is_empty() && !tail.ends_with('\n') {
        return Err(WitnessError::Corrupt {
            path: path.to_path_buf(),
            line: 0,
            reason: "the last line is incomplete".into(),
        });
    }
    match tail.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(l) => parse(path, 0, l).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(counter: i64) -> Checkpoint {
        Checkpoint {
            counter: Some(counter),
            prev_hash: Some(crate::store::audit::GENESIS.into()),
            seq: 10 * counter,
            hash: "ab".repeat(32),
            at: 1_700_000_000_000,
            signature: vec![1, 2, 3],
        }
    }

    #[test]
    fn appended_lines_read_back_whole_and_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.log");
        assert!(last(&path).unwrap().is_none());
        assert!(matches!(read_all(&path), Err(WitnessError::Missing(_))));
        for n in 1..=3 {
            append(&path, &checkpoint(n)).unwrap();
        }
        assert_eq!(read_all(&path).unwrap(), vec![checkpoint(1), checkpoint(2), checkpoint(3)]);
        assert_eq!(last(&path).unwrap(), Some(checkpoint(3)));
    }

    #[test]
    fn a_torn_last_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.log");
        append(&path, &checkpoint(1)).unwrap();
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"counter\":2").unwrap();
        assert!(matches!(last(&path), Err(WitnessError::Corrupt { .. })));
    }
}
