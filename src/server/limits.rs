//! The process's file-descriptor budget and the connection caps derived from it.
//!
//! Every open connection is a file descriptor. If the process reaches RLIMIT_NOFILE, `accept` fails with EMFILE
//! and so does everything else that opens a descriptor: the kube client's reconnects, reading the certificate
//! files, /proc for the metrics. So the caps are derived from the limit with room left for those, and the soft
//! limit is first raised to the hard one (the default soft limit, often 1024, is an old select() convention;
//! raising it needs no privilege).

/// Descriptors kept out of the connection caps: the kube client's connections, watches, certificate and config
/// files, /proc reads, the runtime's epoll and eventfds, stdio, the log thread — a few dozen in practice; 256
/// leaves margin.
pub const RESERVED_FDS: u64 = 256;
/// Default cap on the TLS port. The API server needs a handful of connections per API server instance (HTTP/2
/// multiplexes, HTTP/1.1 keeps up to 25 idle per host): 1024 is far above that and bounds what idle connections
/// can hold (see docs/reliability.md for the memory arithmetic).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 1024;
/// Default cap on the metrics port: the kubelet's probes and a few scrapers.
pub const DEFAULT_METRICS_MAX_CONNECTIONS: u64 = 64;

/// The soft RLIMIT_NOFILE now.
pub fn open_files_limit() -> Option<u64> {
    rlimit().map(|(soft, _)| soft)
}

// rlim_t is u64 on 64-bit Linux but not on every target.
#[allow(clippy::unnecessary_cast)]
fn rlimit() -> Option<(u64, u64)> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0).then_some((limit.rlim_cur as u64, limit.rlim_max as u64))
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force afterwards.
pub fn raise_open_files_limit() -> Option<u64> {
    let (soft, hard) = rlimit()?;
    if soft < hard {
        let raised = libc::rlimit { rlim_cur: hard as libc::rlim_t, rlim_max: hard as libc::rlim_t };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            tracing::warn!(soft, hard, error = %std::io::Error::last_os_error(), "cannot raise the open-files limit");
        }
    }
    open_files_limit()
}

/// The connection caps in force, and how they were reached (for the startup log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCaps {
    pub https: u64,
    pub metrics: u64,
    /// The soft RLIMIT_NOFILE the caps were derived from.
    pub open_files_limit: u64,
    /// True when a requested cap was lowered to fit the limit.
    pub clamped: bool,
}

/// Caps that fit `open_files_limit` with [`RESERVED_FDS`] kept aside: the metrics port gets at most an eighth of
/// what is left, the TLS port the rest. Requested caps (flags) are kept when they fit and lowered when not.
pub fn connection_caps(open_files_limit: u64, https: Option<u64>, metrics: Option<u64>) -> ConnectionCaps {
    let available = open_files_limit.saturating_sub(RESERVED_FDS).max(2);
    let metrics_fit = (available / 8).max(1);
    let metrics_cap = metrics.unwrap_or(DEFAULT_METRICS_MAX_CONNECTIONS).clamp(1, metrics_fit);
    let https_fit = (available - metrics_cap).max(1);
    let https_cap = https.unwrap_or(DEFAULT_MAX_CONNECTIONS).clamp(1, https_fit);
    let clamped = https.is_some_and(|h| h > https_cap) || metrics.is_some_and(|m| m > metrics_cap);
    ConnectionCaps { https: https_cap, metrics: metrics_cap, open_files_limit, clamped }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_the_reserve_free() {
        for limit in [300, 512, 1024, 4096, 65536, 1 << 20] {
            let caps = connection_caps(limit, None, None);
            assert!(caps.https + caps.metrics + RESERVED_FDS <= limit.max(RESERVED_FDS + 2), "{limit}: {caps:?}");
            assert!(caps.https >= 1 && caps.metrics >= 1);
        }
        let roomy = connection_caps(65536, None, None);
        assert_eq!((roomy.https, roomy.metrics), (DEFAULT_MAX_CONNECTIONS, DEFAULT_METRICS_MAX_CONNECTIONS));
        let tight = connection_caps(1024, None, None);
        assert_eq!((tight.https, tight.metrics), (768 - 64, 64));
        assert!(!tight.clamped);
    }

    #[test]
    fn requested_caps_are_lowered_to_fit() {
        let caps = connection_caps(1024, Some(5000), Some(10));
        assert_eq!(caps.metrics, 10);
        assert_eq!(caps.https, 768 - 10);
        assert!(caps.clamped);
        assert_eq!(connection_caps(65536, Some(5000), None).https, 5000);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let raised = raise_open_files_limit().unwrap();
        assert_eq!(Some(raised), rlimit().map(|(_, hard)| hard));
    }
}
