//! The `--json` output.
//!
//! Every document is one line of JSON. Object members are emitted in alphabetical order
//! (the examples below are spread out for reading).
//!
//! # CMAP (`corowire cmap --json …`)
//!
//! Listing (no action, or prefixes) and `-g` print one object:
//!
//! ```json
//! {"map":"icmap","keys":[{"key":"totem.cluster_name","type":"str","value":"corowire-test"}]}
//! ```
//!
//! - `map` is `"icmap"` or `"stats"`;
//! - `type` is the `corosync-cmapctl` type name (`i8` … `u64`, `flt`, `dbl`, `str`, `bin`);
//! - `value` is a JSON number for integers (exact, 64-bit), a number for `flt`/`dbl` (`null`
//!   for NaN and infinities), a string for `str` (invalid UTF-8 replaced by U+FFFD, cut at the
//!   first NUL) and a lowercase hex string for `bin` (binaries are always read, `-b` or not);
//! - if a key cannot be read, the object gets `"error":{"key":K,"error":"CS_ERR_…"}`, the
//!   `corosync-cmapctl` message still goes to stderr and the exit status is the same.
//!
//! Tracking (`-t`/`-T`) prints one object per line and per change, flushed at once, instead of
//! the `Type "q" to finish` banner and the `create>`/`modify>`/`delete>` lines:
//!
//! ```json
//! {"event":"modify","key":"demo.x","type":"u32","value":2,"old_type":"u32","old_value":1}
//! ```
//!
//! `create` has no `old_*` members and `delete` has no `type`/`value`.
//!
//! # Quorum (`corowire quorum --json -s` / `-l`)
//!
//! ```json
//! {"quorum_provider":"corosync_votequorum","nodes":1,"node_id":1,
//!  "ring_id":{"nodeid":1,"seq":5,"text":"1.5"},"quorate":true,
//!  "votequorum":{"expected_votes":1,"highest_expected":1,"total_votes":1,"quorum":1,
//!                "flags":["Quorate"]},
//!  "membership":[{"nodeid":1,"votes":1,"qdevice":"NR","name":"node1","local":true}],
//!  "qdevice":null}
//! ```
//!
//! `-l` prints only `{"membership":[…],"qdevice":…}`. `qdevice` (per member) is `null`
//! unless a quorum device is registered or `-p` is given, else `"NR"` or e.g. `"A,V,NMW"`,
//! as in the text output. The top-level `qdevice` is `null` or
//! `{"name":N,"votes":V,"cast_vote":B}`. `flags` lists the flag words of the text output
//! (`2Node`, `Quorate`, `WaitForAll`, `LastManStanding`, `AutoTieBreaker`, `AllowDownscale`,
//! `Qdevice`). `votes` is `null` if the node's info could not be read. The exit status is as
//! for the text output (0 quorate, 2 not quorate, 1 error).

use corowire::value::OwnedValue;
use serde_json::{json, Map, Value as Json};

/// The JSON form of a value (see the module documentation).
pub(crate) fn value(v: &OwnedValue) -> Json {
    let float = |x: f64| serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number);
    match v {
        OwnedValue::Int8(x) => json!(x),
        OwnedValue::UInt8(x) => json!(x),
        OwnedValue::Int16(x) => json!(x),
        OwnedValue::UInt16(x) => json!(x),
        OwnedValue::Int32(x) => json!(x),
        OwnedValue::UInt32(x) => json!(x),
        OwnedValue::Int64(x) => json!(x),
        OwnedValue::UInt64(x) => json!(x),
        OwnedValue::Float(x) => float((*x).into()),
        OwnedValue::Double(x) => float(*x),
        OwnedValue::String(b) => Json::String(String::from_utf8_lossy(crate::cformat::c_str(b)).into_owned()),
        OwnedValue::Binary(b) => Json::String(b.iter().map(|x| format!("{x:02x}")).collect()),
    }
}

/// `{"key":…,"type":…,"value":…}`.
pub(crate) fn entry(key: &str, v: &OwnedValue) -> Json {
    let mut m = Map::new();
    m.insert("key".into(), key.into());
    m.insert("type".into(), v.value_type().cmapctl_name().into());
    m.insert("value".into(), value(v));
    Json::Object(m)
}

/// Prints a JSON document on its own line.
pub(crate) fn print_line(doc: &Json) {
    let mut text = doc.to_string();
    text.push('\n');
    crate::out::print(&text);
    crate::out::flush();
}
