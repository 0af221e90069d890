//! The built-in server on a thread of the test process, for the suites that need no corosync
//! (`server`, `client`).

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use corowire_unix::cmap::{self, Cmap};
use corowire_unix::server::{Server, ServerConfig};
use corowire_unix::votequorum::{self, Votequorum};

/// A server on its own thread, stopped and cleaned up on drop.
pub(crate) struct TestServer {
    pub(crate) cmap_name: String,
    pub(crate) vq_name: String,
    pub(crate) shm_dir: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub(crate) fn start(tag: &str) -> Self {
        Self::start_with(tag, |_| {})
    }

    pub(crate) fn start_with(tag: &str, adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let base = format!("corowire-test-{}-{tag}", std::process::id());
        let shm_dir = PathBuf::from(format!("/dev/shm/{base}"));
        let _ = std::fs::remove_dir_all(&shm_dir);
        std::fs::create_dir(&shm_dir).unwrap();
        let mut cfg = ServerConfig {
            cmap_name: format!("{base}-cmap"),
            votequorum_name: Some(format!("{base}-votequorum")),
            quorum_name: Some(format!("{base}-quorum")),
            cfg_name: Some(format!("{base}-cfg")),
            shm_dir: shm_dir.clone(),
            ..ServerConfig::default()
        };
        adjust(&mut cfg);
        let (cmap_name, vq_name) = (cfg.cmap_name.clone(), cfg.votequorum_name.clone().unwrap_or_default());
        let mut server = Server::bind(cfg).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || server.run_until(&flag).unwrap());
        Self { cmap_name, vq_name, shm_dir, stop, thread: Some(thread) }
    }

    pub(crate) fn cmap(&self) -> Cmap {
        self.cmap_with(cmap::Options::default())
    }

    pub(crate) fn cmap_with(&self, options: cmap::Options) -> Cmap {
        let timeout = Some(Duration::from_secs(10));
        Cmap::connect_with(cmap::Options { service_name: Some(self.cmap_name.clone()), timeout, ..options })
            .unwrap()
    }

    pub(crate) fn votequorum(&self) -> Votequorum {
        Votequorum::connect_with(votequorum::Options {
            service_name: Some(self.vq_name.clone()),
            timeout: Some(Duration::from_secs(10)),
            ..votequorum::Options::default()
        })
        .unwrap()
    }
}

impl TestServer {
    /// Stops the server and waits for its thread (which drops the server).
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let joined = t.join();
            if !std::thread::panicking() {
                joined.unwrap();
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.shm_dir);
    }
}
