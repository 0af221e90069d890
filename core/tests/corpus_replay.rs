//! Replays the committed fuzz seed corpus (`fuzz/corpus/<target>/`) through the same target
//! functions the fuzzer runs, on stable and under `cargo test`. The target bodies are shared
//! with the fuzz crate by including its `src/targets.rs`.

#[allow(unreachable_pub)]
#[path = "../../fuzz/src/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

/// A fuzz target's body.
type Target = fn(&[u8]);

/// The fuzz targets over single frames, by directory name.
const TARGETS: [(&str, Target); 6] = [
    ("client_response", targets::client_response),
    ("client_notification", targets::client_notification),
    ("setup_response", targets::setup_response),
    ("server_request", targets::server_request),
    ("roundtrip", targets::roundtrip),
    ("stream", targets::stream),
];

/// The fuzz targets over operation sequences (their seeds are not frames).
const SEQUENCES: [(&str, Target); 3] =
    [("ops", targets::ops), ("engines", targets::engines), ("client_conn", targets::client_conn)];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
#[cfg_attr(miri, ignore = "reads the file system, which miri's isolation forbids")]
fn replay_seed_corpus() {
    // Frame seeds with up to 64 prefixes each, as a stream reader would see the bytes arrive;
    // operation sequences with 4 (a prefix is a shorter sequence, ending in the final checks).
    let sequences = SEQUENCES.map(|(t, r)| (t, r, 4));
    for (target, run, prefixes) in TARGETS.map(|(t, r)| (t, r, 64)).into_iter().chain(sequences) {
        let files = files(&corpus_dir(target));
        assert!(!files.is_empty(), "no seeds for {target}");
        for file in &files {
            let data = std::fs::read(file).unwrap();
            run(&data);
            for k in (0..data.len()).step_by(1 + data.len() / prefixes) {
                run(&data[..k]);
            }
        }
        println!("{target}: replayed {} files", files.len());
    }
}

/// The seeds are valid frames: each decodes with at least one decoder of its target.
#[test]
#[cfg_attr(miri, ignore = "reads the file system, which miri's isolation forbids")]
fn seeds_are_valid_frames() {
    use corowire::{cfg, cmap, qb, quorum, votequorum};
    for file in files(&corpus_dir("server_request")) {
        let d = std::fs::read(&file).unwrap();
        let ok = qb::ConnectRequest::decode(&d).is_ok()
            || cmap::Request::decode(&d).is_ok()
            || votequorum::Request::decode(&d).is_ok()
            || quorum::Request::decode(&d).is_ok()
            || cfg::Request::decode(&d).is_ok();
        assert!(ok, "{} decodes as no request", file.display());
    }
    for file in files(&corpus_dir("client_response")) {
        let d = std::fs::read(&file).unwrap();
        assert!(
            cmap::Reply::decode(&d).is_ok()
                || votequorum::Reply::decode(&d).is_ok()
                || quorum::Reply::decode(&d).is_ok()
                || cfg::Reply::decode(&d).is_ok(),
            "{} decodes as no reply",
            file.display()
        );
    }
    for file in files(&corpus_dir("client_notification")) {
        let d = std::fs::read(&file).unwrap();
        assert!(
            cmap::Notification::decode(&d).is_ok()
                || votequorum::Notification::decode(&d).is_ok()
                || quorum::Notification::decode(&d).is_ok()
                || cfg::Notification::decode(&d).is_ok(),
            "{} decodes as no notification",
            file.display()
        );
    }
    for file in files(&corpus_dir("stream")) {
        let d = std::fs::read(&file).unwrap();
        let (max, mut rest) = (targets::stream_max_payload(d[0]), &d[1..]);
        while !rest.is_empty() {
            match corowire::stream::decode(rest, max) {
                Ok(corowire::Status::Complete((_, used))) => rest = &rest[used..],
                other => panic!("{} holds no whole frames: {other:?}", file.display()),
            }
        }
    }
    for file in files(&corpus_dir("setup_response")) {
        let d = std::fs::read(&file).unwrap();
        let ok = qb::ConnectResponse::decode(&d).is_ok() || corowire::frame_len(&d, 24).is_ok();
        assert!(ok, "{} is no setup response", file.display());
    }
}

/// The shared target functions run without the file system, so miri checks them too.
#[test]
fn targets_survive_built_in_inputs() {
    let mut get = vec![0u8; 104];
    get[0] = 2;
    get[8] = 104;
    get[16] = 1;
    get[24] = 7;
    get[32] = 11;
    get[40..47].copy_from_slice(b"debian\0");
    let inputs: [&[u8]; 5] = [&[], &[0xff; 7], &[0; 24], &get, &get[..50]];
    for (_, run) in TARGETS {
        for input in inputs {
            run(input);
        }
    }
    // Not under miri, where one run of `ops` (its engine and connections hold 64 KiB and 40 KiB
    // buffers inline) takes many seconds; tests/pair.rs runs the same pair under miri.
    if !cfg!(miri) {
        for (_, run) in SEQUENCES {
            for input in inputs {
                run(input);
            }
        }
    }
}

/// Decoders by name, each reduced to "did it decode".
type Decoder = fn(&[u8]) -> Result<(), corowire::DecodeError>;

const DECODERS: [(&str, Decoder); 13] = [
    ("qb::ConnectRequest", |d| corowire::qb::ConnectRequest::decode(d).map(drop)),
    ("qb::ConnectResponse", |d| corowire::qb::ConnectResponse::decode(d).map(drop)),
    ("cmap::Request", |d| corowire::cmap::Request::decode(d).map(drop)),
    ("cmap::Reply", |d| corowire::cmap::Reply::decode(d).map(drop)),
    ("cmap::Notification", |d| corowire::cmap::Notification::decode(d).map(drop)),
    ("votequorum::Request", |d| corowire::votequorum::Request::decode(d).map(drop)),
    ("votequorum::Reply", |d| corowire::votequorum::Reply::decode(d).map(drop)),
    ("votequorum::Notification", |d| corowire::votequorum::Notification::decode(d).map(drop)),
    ("quorum::Request", |d| corowire::quorum::Request::decode(d).map(drop)),
    ("quorum::Reply", |d| corowire::quorum::Reply::decode(d).map(drop)),
    ("quorum::Notification", |d| corowire::quorum::Notification::decode(d).map(drop)),
    ("cfg::Request", |d| corowire::cfg::Request::decode(d).map(drop)),
    ("cfg::Reply", |d| corowire::cfg::Reply::decode(d).map(drop)),
];

/// For every seed and every decoder that accepts it whole: each proper prefix is
/// `Incomplete` (need more bytes, never "malformed"), and extra bytes are `TrailingBytes`.
#[test]
#[cfg_attr(miri, ignore = "reads the file system, which miri's isolation forbids")]
fn truncated_seeds_are_incomplete() {
    use corowire::DecodeError;
    let mut checked = 0;
    for (target, _) in TARGETS {
        for file in files(&corpus_dir(target)) {
            let frame = std::fs::read(&file).unwrap();
            for (name, decode) in DECODERS {
                if decode(&frame).is_err() {
                    continue;
                }
                checked += 1;
                for k in 0..frame.len() {
                    match decode(&frame[..k]) {
                        Err(DecodeError::Incomplete { needed, have }) => {
                            assert_eq!(have, k);
                            assert!(k < 16 || needed == frame.len(), "{name} {}: {k}", file.display());
                        }
                        other => panic!("{name} on {} cut to {k}: {other:?}", file.display()),
                    }
                }
                let mut long = frame.clone();
                long.push(0);
                assert_eq!(
                    decode(&long),
                    Err(DecodeError::TrailingBytes { declared: frame.len(), actual: frame.len() + 1 }),
                    "{name} on {}",
                    file.display()
                );
            }
        }
    }
    assert!(checked >= 50, "only {checked} seed/decoder pairs checked");
}
