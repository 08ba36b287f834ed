//! A file (or a set of files read together) watched for changes: parsed at start, re-read every poll interval,
//! re-parsed when its bytes change, the last good value kept when the new one does not parse, and each distinct
//! problem logged once (not at every poll).
//!
//! Polling rather than inotify: Kubernetes updates mounted ConfigMaps and Secrets by swapping a `..data` symlink,
//! which inotify on the file path does not report reliably; reading through the path every second always sees the
//! current target, costs a small read, and needs no new crate. Used for `--watch-container-credentials-config` and
//! for `--tls-cert`/`--tls-key` ([`WatchedFile::load_all`] reads certificate and key as one value, and
//! [`WatchedFile::spawn_with`] hands each new pair to the TLS certificate store).
//!
//! [`WatchedFile::load_optional`] is for a file whose absence means "nothing configured", as the reference treats
//! its container-credentials file: missing reads as empty, at start and at runtime, and a file that does not parse
//! at start leaves the given initial value in place (logged at error level, counted, re-read on every change)
//! rather than stopping the webhook. A version that does not parse later keeps the last good value: emptying a
//! file is a deliberate act, a half-written or mistyped file is not, and dropping every identity because of a
//! typo would silently switch pods from Pod Identity to no credentials.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::container_credentials::ContainerCredentialsConfig;
use crate::log_once::ProblemLog;

/// How often a watched file is re-read.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Versions of any watched file that did not parse, process-wide: what `/metrics` exports as
/// `irsa_webhook_watched_file_rejected_versions_total`. Process-wide because the files a webhook watches (the
/// container-credentials config, the certificate pair) are process-wide too, and the server that renders the
/// metrics does not own them.
static REJECTED_VERSIONS: AtomicU64 = AtomicU64::new(0);

/// See [`REJECTED_VERSIONS`].
pub fn rejected_versions_total() -> u64 {
    REJECTED_VERSIONS.load(Ordering::Relaxed)
}

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
    /// A missing file reads as empty ([`WatchedFile::load_optional`]).
    missing_is_empty: bool,
    /// Versions that did not parse, each distinct content counted once.
    rejected: AtomicU64,
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
        Ok(Self {
            paths,
            parse,
            current: RwLock::new(Arc::new(value)),
            seen: Mutex::new(seen),
            missing_is_empty: false,
            rejected: AtomicU64::new(0),
        })
    }

    /// A file whose absence means "nothing configured" (see the module documentation): never fails. A missing
    /// file is parsed as empty; an unreadable or unparsable one leaves `initial`, with an error logged.
    pub fn load_optional<E: Display>(
        path: impl Into<PathBuf>,
        parse: impl Fn(&[u8]) -> Result<T, E> + Send + Sync + 'static,
        initial: T,
    ) -> Self {
        let path = path.into();
        let parse: Box<Parser<T>> = Box::new(move |contents: &[Vec<u8>]| {
            parse(contents.first().map(Vec::as_slice).unwrap_or_default()).map_err(|e| e.to_string())
        });
        let file = Self {
            paths: vec![path.clone()],
            parse,
            current: RwLock::new(Arc::new(initial)),
            // Never equal to a real digest's first read: the first reload parses whatever is there.
            seen: Mutex::new(Seen {
                digest: [0xff; 32],
                parse_error: None,
                problem: ProblemLog::new(shown(&path)).at_error_level(),
            }),
            missing_is_empty: true,
            rejected: AtomicU64::new(0),
        };
        let contents = file.paths.iter().map(|p| read_sync(p, true)).collect::<Result<Vec<_>, _>>();
        match contents {
            Ok(contents) => {
                file.lock_seen().digest = digest(&contents);
                match (file.parse)(&contents) {
                    Ok(value) => *file.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(value),
                    Err(error) => file.rejected_version(&WatchedFileError::Parse { path: joined(&file.paths), error }),
                }
            }
            Err(error) => file.report(&error),
        }
        file
    }

    /// How many versions of the file did not parse (each distinct content once), for logs and metrics.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
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
                Err(error) if self.missing_is_empty && error.kind() == std::io::ErrorKind::NotFound => {
                    contents.push(Vec::new())
                }
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
                self.rejected_version(&error);
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

    /// A version of the files that does not parse: counted once (reload only parses bytes it has not seen),
    /// logged once, and remembered so an unchanged file does not clear the problem.
    fn rejected_version(&self, error: &WatchedFileError) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        REJECTED_VERSIONS.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.lock_seen();
        seen.problem.problem(error, KEEPING);
        seen.parse_error = Some(error.to_string());
    }

    /// Lines logged about problems with the files so far: (problems, recoveries).
    pub fn problem_lines_logged(&self) -> (u64, u64) {
        self.lock_seen().problem.lines_logged()
    }

    fn lock_seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `--watch-container-credentials-config FILE`: loaded now, re-read every [`DEFAULT_POLL_INTERVAL`]. As in the
/// reference, a missing or empty file means no identities (at start and whenever it becomes so).
pub fn watch_container_credentials(
    path: &Path,
) -> Result<Arc<WatchedFile<ContainerCredentialsConfig>>, WatchedFileError> {
    let file = Arc::new(load_container_credentials(path));
    file.spawn(DEFAULT_POLL_INTERVAL);
    Ok(file)
}

/// The container-credentials config as an optional [`WatchedFile`] (missing or empty: no identities), not yet
/// polled.
pub fn load_container_credentials(path: &Path) -> WatchedFile<ContainerCredentialsConfig> {
    let parse = |bytes: &[u8]| {
        let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
        if text.trim().is_empty() {
            return Ok(ContainerCredentialsConfig::default());
        }
        ContainerCredentialsConfig::parse(text).map_err(|e| e.to_string())
    };
    WatchedFile::load_optional(path, parse, ContainerCredentialsConfig::default())
}

fn read_sync(path: &Path, missing_is_empty: bool) -> Result<Vec<u8>, WatchedFileError> {
    match std::fs::read(path) {
        Err(error) if missing_is_empty && error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        other => other.map_err(|error| WatchedFileError::Read { path: shown(path), error }),
    }
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
        let file = load_container_credentials(&mount.path());
        assert!(has(&file, "a"));
        assert!(!file.reload().await.unwrap(), "unchanged");

        mount.update(&identities(&["b"]));
        assert!(file.reload().await.unwrap());
        assert!(has(&file, "b") && !has(&file, "a"));

        mount.update("{ broken");
        assert!(matches!(file.reload().await, Err(WatchedFileError::Parse { .. })));
        assert!(has(&file, "b"), "the last good config stays");
        assert!(!file.reload().await.unwrap(), "the same broken bytes are not re-parsed");
        assert_eq!(file.rejected(), 1, "each bad version is counted once");

        mount.update(&identities(&["c"]));
        assert!(file.reload().await.unwrap());
        assert!(has(&file, "c"));
    }

    /// The reference's semantics: a deleted or emptied file clears the identities; it coming back restores them.
    #[tokio::test]
    async fn a_deleted_or_emptied_file_clears_the_identities() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, identities(&["a"])).unwrap();
        let file = load_container_credentials(&path);
        std::fs::remove_file(&path).unwrap();
        assert!(file.reload().await.unwrap());
        assert!(file.current().is_empty(), "deleted: no identities");
        std::fs::write(&path, identities(&["a"])).unwrap();
        assert!(file.reload().await.unwrap());
        assert!(has(&file, "a"));
        std::fs::write(&path, "").unwrap();
        assert!(file.reload().await.unwrap());
        assert!(file.current().is_empty(), "emptied: no identities");
        std::fs::write(&path, identities(&["z"])).unwrap();
        assert!(file.reload().await.unwrap());
        assert!(has(&file, "z"));
        assert_eq!(file.rejected(), 0);
    }

    #[tokio::test]
    async fn missing_empty_or_invalid_at_start_means_no_identities_and_keeps_watching() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load_container_credentials(&dir.path().join("missing.json"));
        assert!(missing.current().is_empty());
        assert!(!missing.reload().await.unwrap(), "still missing: nothing changed");
        let empty = dir.path().join("empty.json");
        std::fs::write(&empty, "\n").unwrap();
        assert!(load_container_credentials(&empty).current().is_empty());

        let invalid = dir.path().join("invalid.json");
        std::fs::write(&invalid, "[").unwrap();
        let file = load_container_credentials(&invalid);
        assert!(file.current().is_empty());
        assert_eq!(file.rejected(), 1);
        assert!(!file.reload().await.unwrap(), "the same bad bytes are not re-parsed");
        std::fs::write(&invalid, identities(&["fixed"])).unwrap();
        assert!(file.reload().await.unwrap());
        assert!(has(&file, "fixed"));
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
        // A plain watched file (a missing container-credentials file reads as empty, not as a problem).
        let file = WatchedFile::load(&path, |bytes: &[u8]| {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            ContainerCredentialsConfig::parse(text).map_err(|e| e.to_string())
        })
        .unwrap();
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
        assert!(file.current().contains(&ServiceAccountRef::new("ns", "a")));
        assert_eq!(file.rejected(), 1, "one bad version, counted once");
        // The process-wide count /metrics exports (other tests may add to it meanwhile).
        assert!(rejected_versions_total() >= 1);
        std::fs::write(&path, identities(&["b"])).unwrap();
        assert!(file.reload().await.unwrap());
        assert_eq!(file.problem_lines_logged(), (2, 1), "one line for the recovery");
    }

    #[tokio::test]
    async fn the_poller_hands_each_new_value_to_its_consumer() {
        let mut mount = KubeletDir::new(&identities(&["a"]));
        let file = Arc::new(load_container_credentials(&mount.path()));
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
        let file = Arc::new(load_container_credentials(&mount.path()));
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
