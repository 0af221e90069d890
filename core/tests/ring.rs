//! Ring arithmetic against the formulas of docs/protocol.md §2.3, §2.4, §2.6: chunk
//! positions, wrap-around, free space, data-area sizes, and a model ring driven by the pure
//! functions that must never lose or corrupt a chunk.

use corowire::ring::{
    data_bytes, FlowControl, Geometry, RingError, CHUNK_OVERHEAD, HEADER_FILE_LEN, MAGIC_ALLOC, MAGIC_DEAD,
    MAGIC_LIVE, REF_COUNT_OFFSET, SEM_OFFSET, SEM_PRIVATE_OFFSET, SEM_PRIVATE_PSHARED, USER_DATA_OFFSET,
};
use proptest::prelude::*;
use std::collections::VecDeque;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 });
    if cfg!(miri) {
        config.failure_persistence = None;
    }
    config
}

/// §2.4: `q = p + 2 + ceil(size/4)`, then `q %= W` if `q > W − 1`.
fn spec_next(p: u32, size: usize, w: u32) -> u32 {
    let q = u64::from(p) + 2 + size.div_ceil(4) as u64;
    if q > u64::from(w) - 1 {
        (q % u64::from(w)) as u32
    } else {
        q as u32
    }
}

/// §2.6, the free-space table, in words.
fn spec_free_words(w: u32, r: u32, n: u32, sem_value: u32) -> i64 {
    let (w, r, n) = (i64::from(w), i64::from(r), i64::from(n));
    if w > r {
        r - w + n - 1
    } else if w < r {
        r - w - 1
    } else if sem_value > 0 {
        0
    } else {
        n
    }
}

#[test]
fn constants_match_the_spec() {
    assert_eq!(MAGIC_LIVE, 0xA1A1_A1A1);
    assert_eq!(MAGIC_DEAD, 0xD0D0_D0D0);
    assert_eq!(MAGIC_ALLOC, 0xA110_CED0);
    assert_eq!(CHUNK_OVERHEAD, 12);
    assert_eq!(SEM_OFFSET, 8208);
    assert_eq!(SEM_PRIVATE_OFFSET, 8216);
    assert_eq!(SEM_PRIVATE_PSHARED, 128);
    assert_eq!(REF_COUNT_OFFSET, 8204);
    assert_eq!(USER_DATA_OFFSET, 8240);
    assert_eq!(HEADER_FILE_LEN, 8252);
}

#[test]
fn data_area_sizes_of_section_2_3() {
    assert_eq!(data_bytes(1_048_576, 4096), 1_052_672);
    assert_eq!(data_bytes(1_048_576, 4096) / 4, 263_168);
    assert_eq!(data_bytes(12_328, 4096), 16_384);
    // round_up(max + 13, page): exactly at and just past a page boundary.
    assert_eq!(data_bytes(4096 - 13, 4096), 4096);
    assert_eq!(data_bytes(4096 - 12, 4096), 8192);
    assert_eq!(data_bytes(0, 4096), 4096);
    assert_eq!(data_bytes(1_048_576, 65_536), 1_114_112);
    assert_eq!(data_bytes(u32::MAX, 4096), (u32::MAX as usize + 13).div_ceil(4096) * 4096);
}

#[test]
fn geometry_validation() {
    for bad in [0, 1, 2, u32::MAX / 4 + 1, u32::MAX] {
        assert_eq!(Geometry::new(bad), Err(RingError::BadWordSize { word_size: bad }));
    }
    let g = Geometry::new(263_168).unwrap();
    assert_eq!(g.words(), 263_168);
    assert_eq!(g.bytes(), 1_052_672);
    assert_eq!(g.max_chunk(), 1_052_672 - 12);
    assert_eq!(g.position(263_167), Ok(263_167));
    assert_eq!(g.position(263_168), Err(RingError::BadPosition { position: 263_168, word_size: 263_168 }));
    assert_eq!(g.chunk_size(1_052_660), Ok(1_052_660));
    assert_eq!(g.chunk_size(1_052_661), Err(RingError::BadChunkSize { size: 1_052_661, max: 1_052_660 }));
    assert!(Geometry::new(3).is_ok());
    assert!(Geometry::new(u32::MAX / 4).is_ok());
}

#[test]
fn next_chunk_position() {
    let g = Geometry::new(4096).unwrap();
    // A 24-byte request: 2 header words + 6 payload words.
    assert_eq!(g.next(0, 24), Ok(8));
    // Padding to a whole word, no more (4-byte alignment only).
    assert_eq!(g.next(0, 0), Ok(2));
    assert_eq!(g.next(0, 1), Ok(3));
    assert_eq!(g.next(0, 4), Ok(3));
    assert_eq!(g.next(0, 5), Ok(4));
    assert_eq!(g.next(0, 288), Ok(2 + 72));
    // Landing exactly on W wraps to 0; past it wraps further.
    assert_eq!(g.next(4094, 0), Ok(0));
    assert_eq!(g.next(4090, 24), Ok(2));
    assert_eq!(g.next(4095, 40), Ok(11));
    // A pointer or size out of range is an error, not a wrong index.
    assert_eq!(g.next(4096, 0), Err(RingError::BadPosition { position: 4096, word_size: 4096 }));
    assert!(matches!(g.next(0, g.max_chunk() + 1), Err(RingError::BadChunkSize { .. })));
    assert!(matches!(g.next(0, usize::MAX), Err(RingError::BadChunkSize { .. })));
    assert_eq!(Geometry::chunk_words(0), 2);
    assert_eq!(Geometry::chunk_words(13), 6);
}

#[test]
fn magic_and_payload_words_wrap() {
    let g = Geometry::new(16).unwrap();
    assert_eq!((g.magic_word(0), g.payload_word(0)), (1, 2));
    assert_eq!((g.magic_word(14), g.payload_word(14)), (15, 0));
    assert_eq!((g.magic_word(15), g.payload_word(15)), (0, 1));
    assert_eq!(g.advance(15, u32::MAX), ((15u64 + u64::from(u32::MAX)) % 16) as u32);
}

#[test]
fn payload_ranges_split_at_the_end() {
    let g = Geometry::new(16).unwrap(); // 64 bytes
    assert_eq!(g.payload_ranges(0, 24), [8..32, 0..0]);
    // Chunk at word 13: magic 14, payload from word 15 = byte 60: 4 bytes, then 6 from 0.
    assert_eq!(g.payload_ranges(13, 10), [60..64, 0..6]);
    // Chunk at word 14: payload starts at word 0, no split.
    assert_eq!(g.payload_ranges(14, 10), [0..10, 0..0]);
    // Ending exactly at the end: no second range.
    assert_eq!(g.payload_ranges(12, 8), [56..64, 0..0]);
    // A length past the ring's capacity is clamped.
    let [a, b] = g.payload_ranges(13, usize::MAX);
    assert_eq!(a.len() + b.len(), g.max_chunk());
}

#[test]
fn free_space_table_of_section_2_6() {
    let g = Geometry::new(100).unwrap();
    assert_eq!(g.free_words(10, 5, false), 100 + 5 - 10 - 1);
    assert_eq!(g.free_words(5, 10, false), 10 - 5 - 1);
    assert_eq!(g.free_words(7, 7, false), 100);
    assert_eq!(g.free_words(7, 7, true), 0);
    assert_eq!(g.free_bytes(7, 7, false), 400);
    assert_eq!(g.free_bytes(5, 10, false), 16);
    // A chunk fits only if free_bytes >= len + 12.
    assert!(g.fits(4, 5, 10, false));
    assert!(!g.fits(5, 5, 10, false));
    assert!(g.fits(400 - 12, 7, 7, false));
    assert!(!g.fits(400 - 11, 7, 7, false));
    assert!(!g.fits(0, 7, 7, true));
    assert!(!g.fits(usize::MAX, 7, 7, false));
}

#[test]
fn free_space_with_corrupt_pointers_does_not_panic() {
    // Pointers straight from shared memory, not validated with `position`.
    let g = Geometry::new(3).unwrap();
    for (w, r) in [(u32::MAX, 0), (0, u32::MAX), (u32::MAX, u32::MAX - 1), (3, 0), (0, 3)] {
        for sem in [false, true] {
            assert!(g.free_words(w, r, sem) <= 3, "w={w} r={r}");
            let _ = g.fits(0, w, r, sem);
        }
    }
}

#[test]
fn flow_control_values() {
    assert_eq!(FlowControl::from_raw(0), FlowControl::Normal);
    assert_eq!(FlowControl::from_raw(1), FlowControl::Off);
    assert_eq!(FlowControl::from_raw(2), FlowControl::Off2);
    assert_eq!(FlowControl::from_raw(-4), FlowControl::Other(-4));
    assert!(FlowControl::Normal.may_send());
    assert!(!FlowControl::Off.may_send());
    assert!(FlowControl::Off2.may_send(), "libqb sends anyway on RATE_OFF_2");
    assert!(FlowControl::Other(7).may_send());
}

/// A ring in memory, driven only by `Geometry`: the writer and reader of §2.6.
struct ModelRing {
    g: Geometry,
    data: Vec<u8>,
    write_pt: u32,
    read_pt: u32,
    sem: u32,
    queued: VecDeque<Vec<u8>>,
}

impl ModelRing {
    fn new(words: u32) -> Self {
        let g = Geometry::new(words).unwrap();
        Self { g, data: vec![0; g.bytes()], write_pt: 0, read_pt: 0, sem: 0, queued: VecDeque::new() }
    }

    fn word(&mut self, index: u32) -> &mut [u8] {
        let i = index as usize * 4;
        &mut self.data[i..i + 4]
    }

    fn write(&mut self, payload: &[u8]) -> bool {
        if !self.g.fits(payload.len(), self.write_pt, self.read_pt, self.sem > 0) {
            return false;
        }
        let p = self.write_pt;
        let magic = self.g.magic_word(p);
        self.word(p).copy_from_slice(&(payload.len() as u32).to_ne_bytes());
        self.word(magic).copy_from_slice(&MAGIC_LIVE.to_ne_bytes());
        let [a, b] = self.g.payload_ranges(p, payload.len());
        let split = a.len();
        self.data[a].copy_from_slice(&payload[..split]);
        self.data[b].copy_from_slice(&payload[split..]);
        self.write_pt = self.g.next(p, payload.len()).unwrap();
        self.sem += 1;
        self.queued.push_back(payload.to_vec());
        true
    }

    fn read(&mut self) -> Option<Vec<u8>> {
        if self.sem == 0 {
            return None;
        }
        self.sem -= 1;
        let p = self.g.position(self.read_pt).unwrap();
        let size = u32::from_ne_bytes(self.word(p).try_into().unwrap());
        let len = self.g.chunk_size(size).unwrap();
        let magic_word = self.g.magic_word(p);
        assert_eq!(u32::from_ne_bytes(self.word(magic_word).try_into().unwrap()), MAGIC_LIVE);
        let [a, b] = self.g.payload_ranges(p, len);
        let mut out = self.data[a].to_vec();
        out.extend_from_slice(&self.data[b]);
        self.word(p).fill(0);
        self.word(magic_word).copy_from_slice(&MAGIC_DEAD.to_ne_bytes());
        self.read_pt = self.g.next(p, len).unwrap();
        Some(out)
    }
}

#[test]
fn model_ring_wraps_many_times() {
    let mut ring = ModelRing::new(64);
    let (mut wraps, mut last) = (0, 0);
    for round in 0..if cfg!(miri) { 50 } else { 2000 } {
        let len = (round * 7) % 60;
        let payload: Vec<u8> = (0..len).map(|i| (round as u8).wrapping_add(i as u8)).collect();
        while !ring.write(&payload) {
            let expected = ring.queued.pop_front().unwrap();
            assert_eq!(ring.read().unwrap(), expected);
        }
        wraps += usize::from(ring.write_pt < last);
        last = ring.write_pt;
    }
    while let Some(got) = ring.read() {
        assert_eq!(got, ring.queued.pop_front().unwrap());
    }
    assert!(wraps >= if cfg!(miri) { 5 } else { 250 }, "{wraps} wraps");
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn next_matches_the_spec_formula(words in 3u32..100_000, p in any::<u32>(), len in 0usize..400_000) {
        let g = Geometry::new(words).unwrap();
        let p = p % words;
        match g.next(p, len) {
            Ok(q) => {
                prop_assert!(len <= g.max_chunk());
                prop_assert_eq!(q, spec_next(p, len, words));
                prop_assert!(q < words);
            }
            Err(e) => {
                prop_assert!(len > g.max_chunk());
                prop_assert!(matches!(e, RingError::BadChunkSize { .. }), "{e:?}");
            }
        }
    }

    #[test]
    fn free_space_matches_the_spec_table(
        words in 3u32..1_000_000,
        w in any::<u32>(),
        r in any::<u32>(),
        sem_value in 0u32..3,
        len in 0usize..5_000_000,
    ) {
        let g = Geometry::new(words).unwrap();
        let (w, r) = (w % words, r % words);
        let free = spec_free_words(w, r, words, sem_value);
        prop_assert!(free >= 0);
        prop_assert_eq!(g.free_words(w, r, sem_value > 0) as i64, free);
        prop_assert_eq!(g.free_bytes(w, r, sem_value > 0) as i64, free * 4);
        prop_assert_eq!(g.fits(len, w, r, sem_value > 0), free * 4 >= len as i64 + 12);
    }

    #[test]
    fn geometry_functions_never_panic(
        words in any::<u32>(),
        a in any::<u32>(),
        b in any::<u32>(),
        len in any::<usize>(),
        sem in any::<bool>(),
        page_shift in 0u32..24,
    ) {
        let _ = data_bytes(a, 1usize << page_shift);
        let Ok(g) = Geometry::new(words) else {
            prop_assert!(!(3..=u32::MAX / 4).contains(&words));
            return Ok(());
        };
        let bytes = g.bytes();
        let _ = g.position(a);
        prop_assert!(g.advance(a, b) < words);
        prop_assert!(g.magic_word(a) < words);
        prop_assert!(g.payload_word(a) < words);
        let _ = g.chunk_size(b);
        if let Ok(q) = g.next(a, len) {
            prop_assert!(q < words);
        }
        for r in g.payload_ranges(a, len) {
            prop_assert!(r.start <= r.end && r.end <= bytes);
        }
        prop_assert!(g.free_words(a, b, sem) <= words as usize);
        prop_assert!(g.free_bytes(a, b, sem) <= bytes);
        let _ = g.fits(len, a, b, sem);
        let _ = Geometry::chunk_words(len.min(usize::MAX - 3));
    }

    #[test]
    fn model_ring_delivers_every_chunk_in_order(
        words in 3u32..200,
        ops in proptest::collection::vec((any::<bool>(), 0usize..300, any::<u8>()), 1..200),
    ) {
        let mut ring = ModelRing::new(words);
        for (is_write, len, fill) in ops {
            if is_write {
                let payload = vec![fill; len];
                let free = ring.g.free_bytes(ring.write_pt, ring.read_pt, ring.sem > 0);
                let wrote = ring.write(&payload);
                prop_assert_eq!(wrote, free >= len + CHUNK_OVERHEAD);
            } else if let Some(got) = ring.read() {
                prop_assert_eq!(got, ring.queued.pop_front().unwrap());
            }
        }
        while let Some(got) = ring.read() {
            prop_assert_eq!(got, ring.queued.pop_front().unwrap());
        }
        prop_assert!(ring.queued.is_empty());
        prop_assert_eq!(ring.write_pt, ring.read_pt);
    }
}
