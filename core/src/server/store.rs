//! Key/value storage for the CMAP engine: an ordered map from key bytes to a typed value, with
//! iteration in lexicographic byte order from a prefix (the order of corosync's trie).
//!
//! [`FixedStore`] keeps values in their wire form ([`Value::wire_len`] bytes: a string with its
//! final NUL); `BTreeStore` (feature `alloc`) keeps `crate::value::OwnedValue`s. Both hand out
//! borrowed [`Value`]s.

use crate::cmap::{Value, ValueType};
use core::fmt;
use heapless::Vec;

/// The store cannot take the key or value (its capacity is exhausted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StoreFull;

impl fmt::Display for StoreFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("store full")
    }
}

impl core::error::Error for StoreFull {}

/// An ordered key → typed value map.
///
/// Keys compare as byte strings. Implementations must leave the store unchanged when
/// [`Store::insert`] fails.
pub trait Store {
    /// The value stored at `key`.
    fn get(&self, key: &[u8]) -> Option<Value<'_>>;

    /// Inserts or replaces `key`'s value.
    fn insert(&mut self, key: &[u8], value: Value<'_>) -> Result<(), StoreFull>;

    /// Removes `key`; whether it was there.
    fn remove(&mut self, key: &[u8]) -> bool;

    /// The first key, in byte order, that starts with `prefix` and is greater than `after`
    /// (or the first at all if `after` is `None`), with its value.
    fn next_after(&self, prefix: &[u8], after: Option<&[u8]>) -> Option<(&[u8], Value<'_>)>;

    /// Number of keys.
    fn len(&self) -> usize;

    /// Whether the store is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Offset of the key in the arena; the value follows the key.
    offset: usize,
    key_len: usize,
    value_len: usize,
    value_type: ValueType,
}

impl Entry {
    fn size(&self) -> usize {
        self.key_len + self.value_len
    }
}

/// A fixed-capacity store without heap: at most `KEYS` keys, and `BYTES` bytes of keys and
/// values together. Lookups are binary searches over a sorted index; a removal compacts the
/// byte arena.
///
/// ```
/// use corowire::cmap::Value;
/// use corowire::server::store::{FixedStore, Store};
/// let mut s = FixedStore::<8, 256>::new();
/// s.insert(b"totem.token", Value::UInt32(3000))?;
/// s.insert(b"totem.cluster_name", Value::String(b"test"))?;
/// assert_eq!(s.get(b"totem.cluster_name"), Some(Value::String(b"test")));
/// assert_eq!(s.next_after(b"totem.", None).unwrap().0, b"totem.cluster_name");
/// # Ok::<(), corowire::server::store::StoreFull>(())
/// ```
#[derive(Debug)]
pub struct FixedStore<const KEYS: usize, const BYTES: usize> {
    index: Vec<Entry, KEYS>,
    arena: Vec<u8, BYTES>,
}

impl<const KEYS: usize, const BYTES: usize> Default for FixedStore<KEYS, BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const KEYS: usize, const BYTES: usize> FixedStore<KEYS, BYTES> {
    /// An empty store.
    pub const fn new() -> Self {
        Self { index: Vec::new(), arena: Vec::new() }
    }

    /// Bytes of keys and values in use.
    pub fn bytes_used(&self) -> usize {
        self.arena.len()
    }

    fn key(&self, e: &Entry) -> &[u8] {
        &self.arena[e.offset..e.offset + e.key_len]
    }

    fn stored(&self, e: &Entry) -> Value<'_> {
        let start = e.offset + e.key_len;
        let bytes = &self.arena[start..start + e.value_len];
        // `insert` wrote exactly the wire form of a value of this type, so this cannot fail;
        // the empty binary keeps the lookup total without a panic.
        Value::from_wire(e.value_type, bytes).unwrap_or(Value::Binary(&[]))
    }

    fn find(&self, key: &[u8]) -> Result<usize, usize> {
        self.index.binary_search_by(|e| self.key(e).cmp(key))
    }

    fn remove_at(&mut self, i: usize) {
        let e = self.index.remove(i);
        let (start, size) = (e.offset, e.size());
        self.arena.copy_within(start + size.., start);
        self.arena.truncate(self.arena.len() - size);
        for other in self.index.iter_mut() {
            if other.offset > start {
                other.offset -= size;
            }
        }
    }
}

impl<const KEYS: usize, const BYTES: usize> Store for FixedStore<KEYS, BYTES> {
    fn get(&self, key: &[u8]) -> Option<Value<'_>> {
        self.find(key).ok().map(|i| self.stored(&self.index[i]))
    }

    fn insert(&mut self, key: &[u8], value: Value<'_>) -> Result<(), StoreFull> {
        let value_len = value.wire_len();
        let need = key.len().checked_add(value_len).ok_or(StoreFull)?;
        let pos = match self.find(key) {
            Ok(i) => {
                if self.arena.len() - self.index[i].size() + need > BYTES {
                    return Err(StoreFull);
                }
                self.remove_at(i);
                i
            }
            Err(i) => {
                if self.index.is_full() || self.arena.len() + need > BYTES {
                    return Err(StoreFull);
                }
                i
            }
        };
        let offset = self.arena.len();
        // Cannot fail: room was checked above.
        self.arena.resize(offset + need, 0).map_err(|_| StoreFull)?;
        self.arena[offset..offset + key.len()].copy_from_slice(key);
        value.write_to(&mut self.arena[offset + key.len()..]).ok_or(StoreFull)?;
        let entry = Entry { offset, key_len: key.len(), value_len, value_type: value.value_type() };
        self.index.insert(pos, entry).map_err(|_| StoreFull)
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        match self.find(key) {
            Ok(i) => {
                self.remove_at(i);
                true
            }
            Err(_) => false,
        }
    }

    fn next_after(&self, prefix: &[u8], after: Option<&[u8]>) -> Option<(&[u8], Value<'_>)> {
        let first = self.find(prefix).unwrap_or_else(|i| i);
        let start = match after {
            None => first,
            Some(after) => match self.find(after) {
                Ok(i) => i + 1,
                Err(i) => i,
            }
            .max(first),
        };
        let e = self.index.get(start)?;
        let key = self.key(e);
        key.starts_with(prefix).then(|| (key, self.stored(e)))
    }

    fn len(&self) -> usize {
        self.index.len()
    }
}

#[cfg(feature = "alloc")]
pub use self::btree::BTreeStore;

#[cfg(feature = "alloc")]
mod btree {
    extern crate alloc;

    use super::{Store, StoreFull};
    use crate::cmap::Value;
    use crate::value::OwnedValue;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;
    use core::ops::Bound;

    /// An allocating store over a `BTreeMap` of [`OwnedValue`]s: no capacity limit but memory.
    #[derive(Debug, Default, Clone)]
    pub struct BTreeStore {
        map: BTreeMap<Vec<u8>, OwnedValue>,
    }

    impl BTreeStore {
        /// An empty store.
        pub fn new() -> Self {
            Self::default()
        }
    }

    impl Store for BTreeStore {
        fn get(&self, key: &[u8]) -> Option<Value<'_>> {
            self.map.get(key).map(OwnedValue::as_value)
        }

        fn insert(&mut self, key: &[u8], value: Value<'_>) -> Result<(), StoreFull> {
            self.map.insert(key.to_vec(), value.into());
            Ok(())
        }

        fn remove(&mut self, key: &[u8]) -> bool {
            self.map.remove(key).is_some()
        }

        fn next_after(&self, prefix: &[u8], after: Option<&[u8]>) -> Option<(&[u8], Value<'_>)> {
            let lower = match after {
                Some(a) if a >= prefix => Bound::Excluded(a),
                _ => Bound::Included(prefix),
            };
            let (k, v) = self.map.range::<[u8], _>((lower, Bound::Unbounded)).next()?;
            k.starts_with(prefix).then(|| (k.as_slice(), v.as_value()))
        }

        fn len(&self) -> usize {
            self.map.len()
        }
    }
}
