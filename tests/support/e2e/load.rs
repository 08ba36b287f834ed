//! Pod creations in the background, each attempt timed and classified.

use super::*;

/// One pod creation of a [`Load`].
#[derive(Debug)]
pub struct Attempt {
    pub name: String,
    pub started: Instant,
    pub finished: Instant,
    /// The stored pod, or the error.
    pub result: Result<Value, kube::Error>,
}

impl Attempt {
    pub fn describe(&self, origin: Instant) -> String {
        let outcome = match &self.result {
            Ok(pod) => format!("created, mutated: {}", is_mutated(pod)),
            Err(e) => format!("failed: {}", error_message(e)),
        };
        format!(
            "{} [{:.3} s .. {:.3} s after start]: {outcome}",
            self.name,
            self.started.duration_since(origin).as_secs_f64(),
            self.finished.duration_since(origin).as_secs_f64()
        )
    }
}

/// `workers` tasks creating pods from `template` (renamed `<prefix>-<n>`) back to back until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub started: Instant,
}

impl Load {
    pub fn start(namespace: &Namespace, template: &Value, prefix: &str, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicU64::new(0));
        let tasks = (0..workers)
            .map(|_| {
                let (stop, attempts, counter) = (Arc::clone(&stop), Arc::clone(&attempts), Arc::clone(&counter));
                let (namespace, template, prefix) = (namespace.clone(), template.clone(), prefix.to_owned());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let name = format!("{prefix}-{}", counter.fetch_add(1, Ordering::SeqCst));
                        let started = Instant::now();
                        let result = namespace.create_pod(&renamed(&template, &name)).await;
                        let failed_to_connect = matches!(&result, Err(e) if is_connection_failure(e));
                        attempts.lock().unwrap_or_else(|e| e.into_inner()).push(Attempt {
                            name,
                            started,
                            finished: Instant::now(),
                            result,
                        });
                        if failed_to_connect {
                            // The API server is away (restart): don't spin.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                })
            })
            .collect();
        Self { stop, attempts, tasks, started: Instant::now() }
    }

    /// Attempts finished so far.
    pub fn finished(&self) -> usize {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Attempts that started after `since` and finished so far.
    pub fn finished_since(&self, since: Instant) -> usize {
        self.attempts.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|a| a.started >= since).count()
    }

    /// Waits until `n` attempts that started after `since` have finished.
    pub async fn wait_for(&self, n: usize, since: Instant, timeout: Duration) {
        poll(&format!("{n} pod creations"), timeout, || async {
            let done = self.finished_since(since);
            if done >= n {
                Ok(())
            } else {
                Err(format!("{done} finished"))
            }
        })
        .await
    }

    /// Stops the workers (each finishes its current attempt) and returns every attempt, in start order.
    pub async fn stop(self) -> Vec<Attempt> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("load worker panicked");
        }
        let mut attempts = std::mem::take(&mut *self.attempts.lock().unwrap_or_else(|e| e.into_inner()));
        attempts.sort_by_key(|a| a.started);
        attempts
    }
}
