//! Replays the committed seed corpus of the fuzz targets over this crate's shared-memory
//! parsers (`fuzz/corpus/shm_ring/`, `fuzz/corpus/sem_word/`), its socket control file reader
//! (`fuzz/corpus/sock_control/`), its `serve --config` parser (`fuzz/corpus/serve_config/`)
//! and its corosync.conf parser (`fuzz/corpus/corosync_conf/`) through the same target
//! functions the fuzzer runs, which
//! this test includes from `fuzz/src/unix_targets.rs`.

#[allow(unreachable_pub)]
#[path = "../../../fuzz/src/replay.rs"]
mod replay;
#[allow(unreachable_pub)]
#[path = "../../../fuzz/src/unix_targets.rs"]
mod unix_targets;

#[test]
fn replay_seed_corpus() {
    replay::replay(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz"),
        &[
            ("shm_ring", unix_targets::shm_ring),
            ("sem_word", unix_targets::sem_word),
            ("serve_config", unix_targets::serve_config),
            ("sock_control", unix_targets::sock_control),
            ("corosync_conf", unix_targets::corosync_conf),
        ],
    );
}
