//! The ledger's local journal: JSON lines appended to segment files in
//! `<data dir>/journal/`, each held under an exclusive lock by the process
//! writing it, so a segment nobody holds belongs to a process that stopped.

use super::{LedgerError, UsageEvent};
use crate::store::Store;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Segment id for rows that could not be journaled.
pub const NO_SEGMENT: u64 = 0;
/// A segment is sealed and a new one started past this size.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Rows per store transaction when replaying.
const REPLAY_BATCH: usize = 256;

#[derive(Debug)]
struct Segment {
    id: u64,
    path: PathBuf,
    file: File,
    bytes: u64,
}

#[derive(Debug, Default)]
struct Counts {
    written: u64,
    committed: u64,
    sealed: bool,
    path: PathBuf,
}

#[derive(Debug)]
struct State {
    current: Segment,
    next_id: u64,
    counts: HashMap<u64, Counts>,
}

/// The journal of this process.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    state: Mutex<State>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> LedgerError + '_ {
    move |source| LedgerError::Journal {
        path: path.display().to_string(),
        source,
    }
}

fn open_segment(dir: &Path, id: u64) -> Result<Segment, LedgerError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(format!("{}-{id}.journal", uuid::Uuid::now_v7().simple()));
    let file = std::fs::OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_error(&path))?;
    file.try_lock().map_err(|e| LedgerError::Journal {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(Segment {
        id,
        path,
        file,
        bytes: 0,
    })
}

impl Journal {
    /// Start a fresh segment in `dir` (created owner-only if missing).
    pub fn open(dir: &Path) -> Result<Journal, LedgerError> {
        create_dir(dir)?;
        let current = open_segment(dir, 1)?;
        let mut counts = HashMap::new();
        counts.insert(
            1,
            Counts {
                path: current.path.clone(),
                ..Counts::default()
            },
        );
        Ok(Journal {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                current,
                next_id: 2,
                counts,
            }),
        })
    }

    /// Append one row with a single `write`; returns its segment.
    pub fn append(&self, event: &UsageEvent) -> std::io::Result<u64> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut state = self
            .state
            .lock()
            .map_err(|_| std::io::Error::other("journal lock poisoned"))?;
        state.current.file.write_all(&line)?;
        state.current.bytes += line.len() as u64;
        let id = state.current.id;
        if let Some(counts) = state.counts.get_mut(&id) {
            counts.written += 1;
        }
        if state.current.bytes >= SEGMENT_BYTES {
            self.rotate(&mut state);
        }
        Ok(id)
    }

    fn rotate(&self, state: &mut State) {
        let id = state.next_id;
        match open_segment(&self.dir, id) {
            Ok(segment) => {
                let old = std::mem::replace(&mut state.current, segment);
                state.next_id += 1;
                state.counts.insert(
                    id,
                    Counts {
                        path: state.current.path.clone(),
                        ..Counts::default()
                    },
                );
                if let Some(counts) = state.counts.get_mut(&old.id) {
                    counts.sealed = true;
                }
                Self::delete_finished(state);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not start a new journal segment; continuing in the old one")
            }
        }
    }

    /// Note that `rows` rows of `segment` are in the store.
    pub fn committed(&self, per_segment: &HashMap<u64, u64>) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        for (id, rows) in per_segment {
            if let Some(counts) = state.counts.get_mut(id) {
                counts.committed += rows;
            }
        }
        Self::delete_finished(&mut state);
    }

    /// Called once everything is committed at shutdown: the current segment
    /// is no longer needed either.
    pub fn close(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let id = state.current.id;
        if let Some(counts) = state.counts.get_mut(&id) {
            counts.sealed = true;
        }
        Self::delete_finished(&mut state);
    }

    fn delete_finished(state: &mut State) {
        state.counts.retain(|_, counts| {
            let finished = counts.sealed && counts.committed >= counts.written;
            if finished {
                if let Err(e) = std::fs::remove_file(&counts.path) {
                    tracing::warn!(error = %e, "could not delete a finished journal segment");
                }
            }
            !finished
        });
    }
}

fn create_dir(dir: &Path) -> Result<(), LedgerError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))
}

/// Put every row of every segment no live process holds into the store, and
/// delete those segments. Returns the number of rows read.
pub async fn replay_orphans(store: &dyn Store, dir: &Path) -> Result<usize, LedgerError> {
    create_dir(dir)?;
    let mut replayed = 0;
    let entries = std::fs::read_dir(dir).map_err(io_error(dir))?;
    for entry in entries {
        let path = entry.map_err(io_error(dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("journal") {
            continue;
        }
        let file = File::open(&path).map_err(io_error(&path))?;
        if file.try_lock().is_err() {
            continue; // another live gateway is writing it
        }
        let mut batch = Vec::with_capacity(REPLAY_BATCH);
        for line in std::io::BufReader::new(&file).lines() {
            let line = line.map_err(io_error(&path))?;
            match serde_json::from_str::<UsageEvent>(&line) {
                Ok(event) => batch.push(event),
                Err(e) => tracing::warn!(error = %e, "skipping an unreadable journal line"),
            }
            if batch.len() == REPLAY_BATCH {
                store.append_usage(&batch).await?;
                replayed += batch.len();
                batch.clear();
            }
        }
        store.append_usage(&batch).await?;
        replayed += batch.len();
        std::fs::remove_file(&path).map_err(io_error(&path))?;
    }
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::UsageFilter;

    fn event(id: &str) -> UsageEvent {
        UsageEvent {
            request_id: id.into(),
            ts: 1,
            key_id: Some("key_a".into()),
            route: "/v1/chat/completions".into(),
            model: Some("m".into()),
            provider: Some("p".into()),
            prompt_tokens: 1,
            completion_tokens: 2,
            cached_tokens: 1,
            cost_nanos: 42,
            owner: Some("alice@example.com".into()),
            project_id: Some("proj_default".into()),
            org_id: Some("org_default".into()),
            token_id: None,
            status: 200,
            error_code: None,
            latency_ms: 3,
            streamed: false,
            source_ip: None,
            user_agent: Some("ua".into()),
        }
    }

    #[tokio::test]
    async fn orphaned_segments_are_replayed_once_and_live_ones_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
        let journal_dir = dir.path().join("journal");

        // A live journal (its segment locked) is not touched.
        let live = Journal::open(&journal_dir).unwrap();
        live.append(&event("r1")).unwrap();
        live.append(&event("r2")).unwrap();
        assert_eq!(replay_orphans(&store, &journal_dir).await.unwrap(), 0);

        // Its process "dies": the lock goes with the file handle.
        drop(live);
        assert_eq!(replay_orphans(&store, &journal_dir).await.unwrap(), 2);
        let rows = store
            .usage_events(&UsageFilter::default(), 10)
            .await
            .unwrap();
        assert_eq!(rows, vec![event("r1"), event("r2")]);
        assert_eq!(
            std::fs::read_dir(&journal_dir).unwrap().count(),
            0,
            "replayed segments are deleted"
        );
        assert_eq!(replay_orphans(&store, &journal_dir).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_line_journaled_before_rows_carried_money_still_replays() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
        let journal_dir = dir.path().join("journal");
        std::fs::create_dir_all(&journal_dir).unwrap();
        // A row as an earlier keygate wrote it: no cached tokens, cost or
        // tenancy.
        let old = r#"{"request_id":"r_old","ts":5,"key_id":"key_a","route":"/v1/chat/completions","model":"gpt-4o","provider":"openai","prompt_tokens":3,"completion_tokens":4,"status":200,"error_code":null,"latency_ms":1,"streamed":false,"source_ip":null,"user_agent":null}"#;
        std::fs::write(journal_dir.join("old-1.journal"), format!("{old}\n")).unwrap();
        assert_eq!(replay_orphans(&store, &journal_dir).await.unwrap(), 1);
        let rows = store
            .usage_events(&UsageFilter::default(), 10)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(
            (
                row.request_id.as_str(),
                row.prompt_tokens,
                row.completion_tokens
            ),
            ("r_old", 3, 4)
        );
        assert_eq!((row.cached_tokens, row.cost_nanos), (0, 0));
        assert_eq!(
            (&row.owner, &row.project_id, &row.org_id),
            (&None, &None, &None)
        );
    }

    #[tokio::test]
    async fn committed_segments_are_deleted_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path()).unwrap();
        let segment = journal.append(&event("r1")).unwrap();
        journal.committed(&HashMap::from([(segment, 1)]));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "the open segment stays"
        );
        journal.close();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
