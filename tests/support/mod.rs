//! What the integration tests share, written once: the built binary, unique names, the repository's tools, the
//! kubelet's Secret-volume writer, a kube client from a kubeconfig, arbitrary JSON for property tests, the pod
//! invariants, and (with the `e2e` feature) the end-to-end harness in [`e2e`].
//!
//! Use it from a test file with `mod support;`. Each test file uses a part of it, hence `allow(dead_code)`.
#![allow(dead_code)]

pub mod json_contract;
pub mod pod_invariants;
pub mod pointers;

#[cfg(feature = "e2e")]
pub mod e2e;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;

/// The binary under test, as cargo built it for the integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_irsa-webhook");

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The binary with none of the caller's `IRSA_*` variables: every flag can come from one, and a developer's shell
/// must not change a test's outcome.
pub fn irsa_webhook() -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("IRSA_") {
            command.env_remove(key);
        }
    }
    command
}

/// Runs `irsa-webhook ARGS` (see [`irsa_webhook`]) with nothing on standard input.
pub fn run_binary(args: &[&str]) -> Output {
    irsa_webhook().args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

/// Runs `command` with `stdin` on its standard input. The binary may stop reading early (a refused size): a broken
/// pipe is not the test's concern.
pub fn output_with_stdin(command: &mut Command, stdin: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin);
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("waiting for {command:?}: {e}"))
}

/// The built binary hard-linked (else copied) into `dir` as `name`: the reference's image calls it `webhook`, and
/// the binary behaves as `serve` under that name.
pub fn binary_as(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    // A hard link, not a copy, where it can be: the debug binary is large.
    if std::fs::hard_link(BIN, &path).is_err() {
        std::fs::copy(BIN, &path).unwrap_or_else(|e| panic!("cannot copy {BIN} to {}: {e}", path.display()));
    }
    path
}

/// helm or kubectl from `tests/tools.sh` (fetched on first use, then cached); panics with the reason otherwise.
pub fn tool(name: &str) -> PathBuf {
    let output = Command::new(repo_root().join("tests/tools.sh"))
        .arg(name)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/tools.sh {name}: {e}"));
    assert!(output.status.success(), "tests/tools.sh {name} failed: {}", output.status);
    let path = String::from_utf8_lossy(&output.stdout).lines().last().unwrap_or_default().trim().to_owned();
    assert!(Path::new(&path).is_file(), "tests/tools.sh {name} printed {path:?}, not a file");
    PathBuf::from(path)
}

/// Runs a program, panicking with its output unless it succeeds; returns stdout.
pub fn run(program: &Path, args: &[&str]) -> String {
    let out =
        Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {} failed ({}):\n{}{}",
        program.display(),
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Five lowercase base-36 characters, unique enough per run (process id, time, a counter).
pub fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let mut x = (nanos as u64) ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed);
    // splitmix64 finaliser: spread the bits.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (0..5)
        .map(|i| {
            let digit = ((x >> (i * 6)) % 36) as u32;
            char::from_digit(digit, 36).unwrap_or('0')
        })
        .collect()
}

/// A free TCP port on `ip` (bound and released; another process could take it in between, which is unlikely).
pub fn free_port(ip: IpAddr) -> u16 {
    std::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
        .port()
}

/// A free port on 127.0.0.1.
pub fn free_loopback_port() -> u16 {
    free_port(std::net::Ipv4Addr::LOCALHOST.into())
}

/// `<prefix>-<random suffix>`: a name no other test or run uses (a valid DNS label for short prefixes).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", random_suffix())
}

/// Writes `files` the way the kubelet updates a Secret or ConfigMap volume: a new `..<version>` directory, an
/// atomic `..data` symlink swap, each file a symlink through `..data`, the previous version's directory removed.
pub fn secret_volume_write(dir: &Path, version: &str, files: &[(&str, &[u8])]) {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir_all(&versioned).unwrap_or_else(|e| panic!("cannot create {}: {e}", versioned.display()));
    for (name, content) in files {
        std::fs::write(versioned.join(name), content).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
    }
    let previous = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).expect("symlink ..data_tmp");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    for (name, _) in files {
        if std::fs::symlink_metadata(dir.join(name)).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).expect("file symlink");
        }
    }
    if let Some(previous) = previous.filter(|p| *p != Path::new(&format!("..{version}"))) {
        std::fs::remove_dir_all(dir.join(previous)).expect("remove the previous version");
    }
}

/// A kube client from this kubeconfig file. Nothing a test asks for takes long: a hung request fails the test
/// within a minute instead of stalling it for five.
pub async fn kube_client(kubeconfig: &Path) -> kube::Client {
    let file = kube::config::Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {}: {e}", kubeconfig.display()));
    let mut config = kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("kubeconfig {} is not usable: {e}", kubeconfig.display()));
    config.read_timeout = Some(Duration::from_secs(60));
    config.connect_timeout = Some(Duration::from_secs(5));
    kube::Client::try_from(config).unwrap_or_else(|e| panic!("cannot build a kube client: {e}"))
}

/// Small arbitrary JSON: unknown fields of a pod, junk grafted into a review, corrupted pods. Keys include `/` and
/// `~` so JSON-pointer escaping is exercised; numbers are finite (JSON has no NaN).
pub fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-zA-Z0-9 /~._-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z~/_-]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
