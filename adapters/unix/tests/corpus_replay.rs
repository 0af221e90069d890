//! Replays the committed seed corpus of the fuzz targets over this crate's shared-memory
//! parsers (`fuzz/corpus/shm_ring/`, `fuzz/corpus/sem_word/`) and its `serve --config` parser
//! (`fuzz/corpus/serve_config/`) through the same target
//! functions the fuzzer runs, which this test includes from `fuzz/src/unix_targets.rs`.

#[allow(unreachable_pub)]
#[path = "../../../fuzz/src/unix_targets.rs"]
mod unix_targets;

use std::path::Path;

/// A fuzz target's body.
type Target = fn(&[u8]);

#[test]
fn replay_seed_corpus() {
    let targets: [(&str, Target); 3] = [
        ("shm_ring", unix_targets::shm_ring),
        ("sem_word", unix_targets::sem_word),
        ("serve_config", unix_targets::serve_config),
    ];
    for (target, run) in targets {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no seeds for {target}");
        for file in &files {
            let data = std::fs::read(file).unwrap();
            // Every prefix too: the fields are read in order, so each cut is another input.
            for k in 0..=data.len() {
                run(&data[..k]);
            }
        }
    }
}
