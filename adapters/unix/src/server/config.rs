//! The server's configuration file: CMAP keys in `corosync-cmapctl -p` form, some of which
//! also configure the quorum model.
//!
//! # Format
//!
//! One entry per line; blank lines and lines starting with `#` are ignored:
//!
//! ```text
//! # key                      type  value
//! totem.cluster_name         str   demo cluster
//! totem.nodeid               u32   1
//! quorum.expected_votes      u32   3
//! quorum.two_node            u8    0
//! uidgid.uid.1000            u8    1
//! ```
//!
//! - `type` is a `corosync-cmapctl` type name: `i8`, `u8`, `i16`, `u16`, `i32`, `u32`, `i64`,
//!   `u64`, `flt`, `dbl` or `str`. Fields are separated by blanks (spaces or
//!   tabs, any number, so columns may be aligned); a `str` value is the rest of the line
//!   after the blanks that follow the type (it may contain spaces; it may be empty).
//! - Every entry becomes a key of the default CMAP map (configuration keys may be read-only
//!   for clients, as in corosync).
//! - These keys also set the quorum model (any integer type): `totem.nodeid` (the local node
//!   id), `quorum.votes` (the local node's votes), `quorum.expected_votes`,
//!   `quorum.two_node`, `quorum.wait_for_all`, `quorum.last_man_standing`,
//!   `quorum.auto_tie_breaker`, `quorum.allow_downscale` (0 or not 0), and
//!   `quorum.device.votes`.
//! - corosync's node list keys `nodelist.node.<i>.nodeid` (and optionally
//!   `nodelist.node.<i>.quorum_votes`, default 1) add the other nodes of the cluster to the
//!   quorum model, as members; the entry with the local node id sets the local votes.
//!
//! Unlike `corosync-cmapctl -p`, whose `str` value is a single word, a `str` value here is
//! the rest of the line, and there are no `^key` deletions.

use core::fmt;
use std::path::Path;

use corowire::cmap::ValueType;
use corowire::server::votequorum::QuorumConfig;

use corowire::value::OwnedValue;

/// A configuration line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number (0: the file could not be read).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.reason)
        } else {
            write!(f, "line {}: {}", self.line, self.reason)
        }
    }
}

impl core::error::Error for ConfigError {}

/// Parses one value of type `ty` from `text`.
fn parse_value(ty: ValueType, text: &str) -> Result<OwnedValue, String> {
    fn num<T: core::str::FromStr>(text: &str, ty: ValueType) -> Result<T, String> {
        text.trim().parse().map_err(|_| format!("'{text}' is not a valid {} value", ty.cmapctl_name()))
    }
    Ok(match ty {
        ValueType::Int8 => OwnedValue::Int8(num(text, ty)?),
        ValueType::UInt8 => OwnedValue::UInt8(num(text, ty)?),
        ValueType::Int16 => OwnedValue::Int16(num(text, ty)?),
        ValueType::UInt16 => OwnedValue::UInt16(num(text, ty)?),
        ValueType::Int32 => OwnedValue::Int32(num(text, ty)?),
        ValueType::UInt32 => OwnedValue::UInt32(num(text, ty)?),
        ValueType::Int64 => OwnedValue::Int64(num(text, ty)?),
        ValueType::UInt64 => OwnedValue::UInt64(num(text, ty)?),
        ValueType::Float => OwnedValue::Float(num(text, ty)?),
        ValueType::Double => OwnedValue::Double(num(text, ty)?),
        ValueType::String => OwnedValue::String(text.into()),
        ValueType::Binary => return Err("binary values cannot be configured".into()),
    })
}

/// Parses configuration text (see the [module documentation](self)) into CMAP keys.
///
/// # Errors
/// The first malformed line.
pub fn parse_keys(text: &str) -> Result<Vec<(String, OwnedValue)>, ConfigError> {
    let mut keys = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |reason: String| ConfigError { line: i + 1, reason };
        let (key, rest) = split_word(line);
        let (ty, value) = split_word(rest);
        if key.is_empty() || ty.is_empty() {
            return Err(error("expected 'key type value'".into()));
        }
        let ty = ValueType::ALL
            .into_iter()
            .find(|t| t.cmapctl_name() == ty)
            .ok_or_else(|| error(format!("unknown type '{ty}'")))?;
        // The value is the rest of the line after the type and the blanks that follow it.
        let value = parse_value(ty, value.trim_end_matches(['\r', '\n'])).map_err(error)?;
        keys.push((key.to_owned(), value));
    }
    Ok(keys)
}

/// Splits off the first blank-separated word of `s`; the rest starts after the blanks.
fn split_word(s: &str) -> (&str, &str) {
    s.split_once([' ', '\t']).map_or((s, ""), |(word, rest)| (word, rest.trim_start_matches([' ', '\t'])))
}

/// Reads a configuration file with [`parse_keys`].
///
/// # Errors
/// The file cannot be read, or a line is malformed.
pub fn load_keys(path: &Path) -> Result<Vec<(String, OwnedValue)>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError { line: 0, reason: format!("{}: {e}", path.display()) })?;
    parse_keys(&text)
}

/// The integer value of a configured key, if it is an integer.
fn integer(value: &OwnedValue) -> Option<u64> {
    value.as_value().as_i64().and_then(|v| u64::try_from(v).ok())
}

/// Applies the quorum settings among `keys` (see the [module documentation](self)) to `cfg`.
pub fn apply_quorum_keys(keys: &[(String, OwnedValue)], cfg: &mut QuorumConfig) {
    for (key, value) in keys {
        let Some(n) = integer(value) else { continue };
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        match key.as_str() {
            "totem.nodeid" => cfg.nodeid = n32,
            "quorum.votes" => cfg.votes = n32,
            "quorum.expected_votes" => cfg.expected_votes = n32,
            "quorum.two_node" => cfg.two_node = n != 0,
            "quorum.wait_for_all" => cfg.wait_for_all = n != 0,
            "quorum.last_man_standing" => cfg.last_man_standing = n != 0,
            "quorum.auto_tie_breaker" => cfg.auto_tie_breaker = n != 0,
            "quorum.allow_downscale" => cfg.allow_downscale = n != 0,
            "quorum.device.votes" => cfg.qdevice_votes = n32,
            _ => {}
        }
    }
}

/// The nodes of corosync's node list among `keys` (`nodelist.node.<i>.nodeid`, with
/// `nodelist.node.<i>.quorum_votes`, default 1), in key order: `(nodeid, votes)`.
pub fn nodelist(keys: &[(String, OwnedValue)]) -> Vec<(u32, u32)> {
    let field = |index: &str, name: &str| {
        let key = format!("nodelist.node.{index}.{name}");
        keys.iter().rev().find(|(k, _)| *k == key).and_then(|(_, v)| integer(v))
    };
    let mut nodes: Vec<(u32, u32)> = Vec::new();
    for (key, _) in keys {
        let Some(index) = key.strip_prefix("nodelist.node.").and_then(|k| k.strip_suffix(".nodeid")) else {
            continue;
        };
        let Some(nodeid) = field(index, "nodeid").and_then(|n| u32::try_from(n).ok()) else { continue };
        let votes = field(index, "quorum_votes").map_or(1, |v| u32::try_from(v).unwrap_or(u32::MAX));
        if !nodes.iter().any(|&(n, _)| n == nodeid) {
            nodes.push((nodeid, votes));
        }
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_with_aligned_columns_parses() {
        let text = "# key   type value\ntotem.cluster_name         str   demo cluster\n\
                    quorum.expected_votes\tu32\t3\n";
        let keys = parse_keys(text).unwrap();
        assert_eq!(keys[0], ("totem.cluster_name".to_owned(), OwnedValue::String("demo cluster".into())));
        assert_eq!(keys[1], ("quorum.expected_votes".to_owned(), OwnedValue::UInt32(3)));
    }

    #[test]
    fn lines_parse_like_cmapctl_p() {
        let keys = parse_keys(
            "# comment\n\ntotem.cluster_name str my cluster \nquorum.expected_votes u32 3\n\
             x.f flt 1.5\nx.e str\nquorum.two_node\tu8\t1\n",
        )
        .unwrap();
        assert_eq!(
            keys,
            vec![
                ("totem.cluster_name".into(), OwnedValue::String("my cluster ".into())),
                ("quorum.expected_votes".into(), OwnedValue::UInt32(3)),
                ("x.f".into(), OwnedValue::Float(1.5)),
                ("x.e".into(), OwnedValue::String(Vec::new())),
                ("quorum.two_node".into(), OwnedValue::UInt8(1)),
            ]
        );
        let mut cfg = QuorumConfig::default();
        apply_quorum_keys(&keys, &mut cfg);
        assert_eq!((cfg.expected_votes, cfg.two_node), (3, true));
    }

    #[test]
    fn node_list_keys_name_the_nodes() {
        let keys = parse_keys(
            "nodelist.node.0.nodeid u32 1\nnodelist.node.0.ring0_addr str 10.0.0.1\n\
             nodelist.node.1.nodeid u32 7\nnodelist.node.1.quorum_votes u32 3\nnodelist.node.2.name str x\n",
        )
        .unwrap();
        assert_eq!(nodelist(&keys), vec![(1, 1), (7, 3)]);
    }

    #[test]
    fn bad_lines_name_their_line() {
        assert_eq!(parse_keys("a.b u32 x").unwrap_err().line, 1);
        assert_eq!(parse_keys("\na.b").unwrap_err().line, 2);
        assert!(parse_keys("a.b u8 256").unwrap_err().reason.contains("u8"));
        assert!(parse_keys("a.b wat 1").unwrap_err().reason.contains("unknown type"));
        assert!(parse_keys("a.b bin 00").is_err());
    }
}
