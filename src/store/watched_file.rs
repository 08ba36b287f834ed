//! A file (or a set of files read together) watched for changes: parsed at start, re-read every poll interval,
//! re-parsed when its bytes change, the last good value kept when the new one does not parse, and each distinct
//! problem logged once (not at every poll).
//!
//! Polling rather than inotify: Kubernetes updates mounted ConfigMaps and Secrets by swapping a `..data` symlink,
//! which inotify on the file path does not report reliably; reading through the path every second always sees the
//! current target, costs a small read, and needs no new crate. Used for `--watch-container-credentials-config` and
//! for `--tls-cert`/`--tls-key` ([`WatchedFile::load_all`] reads certificate and key as one value, and
//! [`WatchedFile::spawn_with`] hands each new pair to the TLS certificate store).

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::container_credentials::ContainerCredentialsConfig;
use crate::log_once::ProblemLog;

/// How often a watched file is re-read.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What is done about a problem, in its log line.
const KEEPING: &str = "keeping the last good version";

#[derive(Debug, thiserror::Error)]
pub enum WatchedFileError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}: {error}")]
    Parse { path: String, error: String },
}

type Parser<T> = dyn Fn(&[Vec<u8>]) -> Result<T, String> + Send + Sync;

/// What the last poll saw, so an unchanged file costs a read and a hash, and a problem is logged once, not every
/// second.
struct Seen {
    digest: [u8; 32],
    /// Why the bytes of `digest` do not parse, as logged (`None`: they are the current value).
    parse_error: Option<String>,
    /// The problem last logged; resolved only when the files read again *and* what they hold is usable.
    problem: ProblemLog,
}

pub struct WatchedFile<T> {
    paths: Vec<PathBuf>,
    parse: Box<Parser<T>>,
    current: RwLock<Arc<T>>,
    seen: Mutex<Seen>,
}

impl<T: Send + Sync + 'static> WatchedFile<T> {
    /// Reads and parses `path`; an error here is the caller's to report (nothing good to keep yet).
    pub fn load<E: Display>(
        path: impl Into<PathBuf>,
        parse: impl Fn(&[u8]) -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<Self, WatchedFileError> {
        Self::load_all(vec![path.into()], move |contents: &[Vec<u8>]| {
            parse(contents.first().map(Vec::as_slice).unwrap_or_default())
        })
    }

    /// Several files parsed into one value, e.g. a certificate and its key: a change to any re-parses all, so
    /// a half-updated pair fails to parse and the last good pair stays until the other half arrives.
    pub fn load_all<E: Display>(
        paths: Vec<PathBuf>,
        parse: impl Fn(&[Vec<u8>]) -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<Self, WatchedFileError> {
        let parse: Box<Parser<T>> = Box::new(move |contents| parse(contents).map_err(|e| e.to_string()));
        let contents = paths
            .iter()
            .map(|path| std::fs::read(path).map_err(|error| WatchedFileError::Read { path: shown(path), error }))
            .collect::<Result<Vec<_>, _>>()?;
        let value = parse(&contents).map_err(|error| WatchedFileError::Parse { path: joined(&paths), error })?;
        let seen = Seen { digest: digest(&contents), parse_error: None, problem: ProblemLog::new(joined(&paths)) };
        Ok(Self { paths, parse, current: RwLock::new(Arc::new(value)), seen: Mutex::new(seen) })
    }

    /// The last good value; cheap enough for every request.
    pub fn current(&self) -> Arc<T> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Re-reads the files once: `Ok(true)` when a new value replaced the old one, `Ok(false)` when nothing
    /// changed. On an error the last good value stays, and the error is logged once per distinct problem.
    pub async fn reload(&self) -> Result<bool, WatchedFileError> {
        let mut contents = Vec::with_capacity(self.paths.len());
        for path in &self.paths {
            match tokio::fs::read(path).await {
                Ok(bytes) => contents.push(bytes),
                Err(error) => {
                    let error = WatchedFileError::Read { path: shown(path), error };
                    self.report(&error);
                    return Err(error);
                }
            }
        }
        let digest = digest(&contents);
        {
            let mut seen = self.lock_seen();
            if seen.digest == digest {
                // The bytes of the last read: the value, or the parse error, still holds (and is only logged
                // again if the files were unreadable in between).
                match seen.parse_error.clone() {
                    None => seen.problem.resolved(),
                    Some(error) => {
                        seen.problem.problem(&error, KEEPING);
                    }
                }
                return Ok(false);
            }
            seen.digest = digest;
        }
        match (self.parse)(&contents) {
            Ok(value) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value);
                let mut seen = self.lock_seen();
                seen.parse_error = None;
                seen.problem.resolved();
                tracing::info!(path = %joined(&self.paths), "reloaded");
                Ok(true)
            }
            Err(error) => {
                let error = WatchedFileError::Parse { path: joined(&self.paths), error };
                let mut seen = self.lock_seen();
                seen.problem.problem(&error, KEEPING);
                seen.parse_error = Some(error.to_string());
                Err(error)
            }
        }
    }

    /// Polls every `interval` until the last reference to this file is dropped. Needs a Tokio runtime.
    pub fn spawn(self: &Arc<Self>, interval: Duration) -> JoinHandle<()> {
        self.spawn_with(interval, |_| {})
    }

    /// Polls like [`WatchedFile::spawn`], and hands every new value to `on_change` — for a consumer that keeps
    /// its own copy, such as the TLS certificate store.
    pub fn spawn_with(
        self: &Arc<Self>,
        interval: Duration,
        on_change: impl Fn(&Arc<T>) + Send + 'static,
    ) -> JoinHandle<()> {
        let file = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticker.tick().await; // the first tick is immediate; the file was just loaded
            loop {
                ticker.tick().await;
                let Some(file) = file.upgrade() else { return };
                // Errors are logged by reload; the last good value stays.
                if let Ok(true) = file.reload().await {
                    on_change(&file.current());
                }
            }
        })
    }

    fn report(&self, error: &WatchedFileError) {
        self.lock_seen().problem.problem(error, KEEPING);
    }

    /// Lines logged about problems with the files so far: (problems, recoveries).
    pub fn problem_lines_logged(&self) -> (u64, u64) {
        self.lock_seen().problem.lines_logged()
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `--watch-container-credentials-config FILE`: loaded now, re-read every [`DEFAULT_POLL_INTERVAL`].
pub fn watch_container_credentials(
    path: &Path,
) -> Result<Arc<WatchedFile<ContainerCredentialsConfig>>, WatchedFileError> {
    let file = Arc::new(load_container_credentials(path)?);
    file.spawn(DEFAULT_POLL_INTERVAL);
    Ok(file)
}

/// The container-credentials config as a [`WatchedFile`], not yet polled.
pub fn load_container_credentials(path: &Path) -> Result<WatchedFile<ContainerCredentialsConfig>, WatchedFileError> {
    WatchedFile::load(path, |bytes: &[u8]| {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
        ContainerCredentialsConfig::parse(text).map_err(|e| e.to_string())
    })
}

fn digest(contents: &[Vec<u8>]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for bytes in contents {
        // Lengths too, so moving bytes from one file to the next is a change.
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    hasher.finalize().into()
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn joined(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| shown(p)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::identity::ServiceAccountRef;

    fn identities(names: &[&str]) -> String {
        let entries: Vec<String> =
            names.iter().map(|n| format!(r#"{{"namespace":"ns","serviceAccount":"{n}"}}"#)).collect();
        format!(r#"{{"identities":[{}]}}"#, entries.join(","))
    }

    fn has(file: &WatchedFile<ContainerCredentialsConfig>, name: &str) -> bool {
        file.current().contains(&ServiceAccountRef::new("ns", name))
    }

    /// A directory laid out as the kubelet mounts a ConfigMap: `config.json -> ..data/config.json`,
    /// `..data -> ..<version>`, updated by renaming a new `..data` link over the old one.
    struct KubeletDir {
        dir: tempfile::TempDir,
        version: usize,
    }

    impl KubeletDir {
        fn new(content: &str) -> Self {
            let mut mount = Self { dir: tempfile::tempdir().unwrap(), version: 0 };
            mount.update(content);
            symlink("..data/config.json", mount.path()).unwrap();
            mount
        }

        fn path(&self) -> PathBuf {
            self.dir.path().join("config.json")
        }

        fn update(&mut self, content: &str) {
            let old = self.dir.path().join(format!("..v{}", self.version));
            self.version += 1;
            let version = format!("..v{}", self.version);
            std::fs::create_dir(self.dir.path().join(&version)).unwrap();
            std::fs::write(self.dir.path().join(&version).join("config.json"), content).unwrap();
            let temporary = self.dir.path().join("..data_tmp");
            symlink(&version, &temporary).unwrap();
            std::fs::rename(&temporary, self.dir.path().join("..data")).unwrap();
            let _ = std::fs::remove_dir_all(old);
        }
    }

    #[tokio::test]
    async fn follows_kubelet_symlink_swaps_and_keeps_the_last_good_config() {
        let mut mount = KubeletDir::new(&identities(&["a"]));
        let file = load_container_credentials(&mount.path()).unwrap();
        assert!(has(&file, "a"));
        assert!(!file.reload().await.unwrap(), "unchanged");

        mount.update(&identities(&["b"]));
        assert!(file.reload().await.unwrap());
        assert!(has(&file, "b") && !has(&file, "a"));

        mount.update("{ broken");
        assert!(matches!(file.reload().await, Err(WatchedFileError::Parse { .. })));
        assert!(has(&file, "b"), "the last good config stays");
        assert!(!file.reload().await.unwrap(), "the same broken bytes are not re-parsed");

        mount.update(&identities(&["c"]));
        assert!(file.reload().await.unwrap());
        assert!(has(&file, "c"));
    }

    #[tokio::test]
    async fn a_vanished_file_keeps_the_last_good_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, identities(&["a"])).unwrap();
        let file = load_container_credentials(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(file.reload().await, Err(WatchedFileError::Read { .. })));
        assert!(has(&file, "a"));
        std::fs::write(&path, identities(&["a"])).unwrap();
        assert!(!file.reload().await.unwrap(), "back as it was");
        std::fs::write(&path, identities(&["z"])).unwrap();
        assert!(file.reload().await.unwrap());
        assert!(has(&file, "z"));
    }

    #[test]
    fn load_reports_missing_and_invalid_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        assert!(matches!(load_container_credentials(&missing), Err(WatchedFileError::Read { .. })));
        let invalid = dir.path().join("invalid.json");
        std::fs::write(&invalid, "[").unwrap();
        let error = load_container_credentials(&invalid).err().unwrap();
        assert!(error.to_string().contains("invalid.json"), "{error}");
    }

    #[tokio::test]
    async fn several_files_are_one_value() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, "pair-1").unwrap();
        std::fs::write(&key, "pair-1").unwrap();
        // A stand-in for a certificate parser: both halves must belong together.
        let file = WatchedFile::load_all(vec![cert.clone(), key.clone()], |contents: &[Vec<u8>]| {
            if contents[0] == contents[1] {
                Ok(String::from_utf8_lossy(&contents[0]).into_owned())
            } else {
                Err("certificate and key do not match")
            }
        })
        .unwrap();
        std::fs::write(&cert, "pair-2").unwrap();
        assert!(file.reload().await.is_err(), "half an update");
        assert_eq!(*file.current(), "pair-1");
        std::fs::write(&key, "pair-2").unwrap();
        assert!(file.reload().await.unwrap());
        assert_eq!(*file.current(), "pair-2");
    }

    #[tokio::test]
    async fn a_persisting_problem_is_logged_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, identities(&["a"])).unwrap();
        let file = load_container_credentials(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        for _ in 0..5 {
            assert!(matches!(file.reload().await, Err(WatchedFileError::Read { .. })));
        }
        assert_eq!(file.problem_lines_logged(), (1, 0), "a vanished file: one line, not one a poll");
        std::fs::write(&path, "{ broken").unwrap();
        for _ in 0..5 {
            let _ = file.reload().await;
        }
        assert_eq!(file.problem_lines_logged(), (2, 0), "back but broken: one more line, and no recovery yet");
        assert!(has(&file, "a"));
        std::fs::write(&path, identities(&["b"])).unwrap();
        assert!(file.reload().await.unwrap());
        assert_eq!(file.problem_lines_logged(), (2, 1), "one line for the recovery");
    }

    #[tokio::test]
    async fn the_poller_hands_each_new_value_to_its_consumer() {
        let mut mount = KubeletDir::new(&identities(&["a"]));
        let file = Arc::new(load_container_credentials(&mount.path()).unwrap());
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let _task = file.spawn_with(Duration::from_millis(10), move |config| {
            let _ = seen_tx.send(config.contains(&ServiceAccountRef::new("ns", "b")));
        });
        mount.update(&identities(&["b"]));
        let handed = tokio::time::timeout(Duration::from_secs(5), seen_rx.recv()).await.unwrap();
        assert_eq!(handed, Some(true), "the consumer got the new value");
        mount.update("{ broken");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(seen_rx.try_recv().is_err(), "a value that does not parse is not handed over");
    }

    #[tokio::test]
    async fn the_poller_picks_up_changes_and_stops_with_its_file() {
        let mut mount = KubeletDir::new(&identities(&["a"]));
        let file = Arc::new(load_container_credentials(&mount.path()).unwrap());
        let task = file.spawn(Duration::from_millis(10));
        mount.update(&identities(&["b"]));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !has(&file, "b") {
            assert!(std::time::Instant::now() < deadline, "the change was not picked up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(file);
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }
}
