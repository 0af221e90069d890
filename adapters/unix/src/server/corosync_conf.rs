//! corosync.conf itself: its syntax (corosync 3.1.7's `exec/coroparse.c`) and the CMAP keys
//! corosync presents for it, including those it derives (`exec/totemconfig.c`, `exec/main.c`,
//! `exec/mon.c`, `exec/wd.c`).
//!
//! # Syntax
//!
//! ```text
//! # a comment (a line whose first non-blank character is '#')
//! totem {
//!     cluster_name: my cluster
//!     interface {
//!         linknumber: 1
//!     }
//! }
//! ```
//!
//! A line that contains `{` opens a section (its name is what comes before, without blanks
//! and trailing `:`); otherwise a line with `:` is `name: value` (the value is the rest of the
//! line without the blanks around it, and may contain spaces); otherwise a line `}` closes the
//! section. Every key is the section path joined by dots: `quorum { two_node: 1 }` gives
//! `quorum.two_node`. As in coroparse.c, some places rename or type their keys:
//!
//! - `nodelist { node { ... } }`: the `i`-th node's items become `nodelist.node.<i>.<name>`;
//!   `nodeid` and `quorum_votes` are `u32`.
//! - `totem { interface { ... } }`: `totem.interface.<linknumber>.<name>` for `bindnetaddr`,
//!   `mcastaddr`, `broadcast`, `mcastport` (`u16`), `ttl` and `knet_link_priority` (`u8`),
//!   `knet_ping_interval`, `knet_ping_timeout`, `knet_ping_precision`, `knet_pong_count`
//!   (`u32`), `knet_transport`; `member { memberaddr: A }` entries become
//!   `totem.interface.<linknumber>.member.<j>`. Other items keep their plain path.
//! - `logging { logger_subsys { subsys: S ... } }`: `logging.logger_subsys.<S>.<name>`;
//!   `logging_daemon { name: N [subsys: S] ... }` likewise (`N` = `corosync` means `logging`).
//! - `uidgid { uid: USER  gid: GROUP }`: `uidgid.config.uid.<uid>` / `uidgid.config.gid.<gid>`
//!   (`u8` 1), the names resolved through the system's user and group databases.
//! - Integers: the `totem.*` timeouts and constants (`u32`; `totem.config_version` `u64`,
//!   `totem.knet_compression_level` `i32`), `quorum.expected_votes`, `quorum.votes`,
//!   `quorum.last_man_standing_window`, `quorum.leaving_timeout`, `quorum.device.timeout`,
//!   `quorum.device.sync_timeout`, `quorum.device.votes` (`u32`), `quorum.two_node`,
//!   `quorum.wait_for_all`, `quorum.auto_tie_breaker`, `quorum.last_man_standing`,
//!   `quorum.allow_downscale`, `quorum.expected_votes_tracking`, `quorum.device.master_wins`
//!   (`u8`), `resources.watchdog_timeout` (`u32`), `resources.*.poll_period` (`u64`).
//!   Every other value is a string.
//!
//! Errors carry the line and coroparse's words (`Missing closing brace`, `Line is not opening
//! or closing section or key value`, ...). Unlike corosync, the file must be UTF-8, at most
//! [`MAX_FILE_LEN`] bytes; lines are at most 510 bytes and key names 255, as corosync's (which
//! also bounds the nesting: a section path is a key name, so at most 127 levels deep).
//! `totem.crypto_model` and `totem.knet_compression_model` are checked against the models
//! of the libknet this machine's corosync 3.1.7 runs with (coroparse asks libknet for its
//! plugins: here `nss`, `openssl`; `zlib`, `lz4`, `lz4hc`, `lzo2`, `lzma`, `bzip2`, `zstd`);
//! a corosync with other plugins accepts other names.
//!
//! A node list may have any length here; `corowire serve` refuses more than 384 nodes
//! ([`MAX_MODEL_NODES`](crate::server::MAX_MODEL_NODES)) when it binds. corosync 3.1.7 does
//! not check: its member lists hold 384 (`PROCESSOR_COUNT_MAX`), yet it starts with 385 to 388
//! nodes (`Expected votes: 385` with 385): link 0's `member_list` (the last field of
//! `struct totem_interface`) overruns into link 1's addresses, and from 389 nodes into its
//! `ttl`, so corosync refuses with an unrelated message (`parse error in config: Can only set
//! ttl on multicast transport types for interface 1`). The server keeps corosync's array size
//! rather than copy that overrun: 385 to 388 nodes start on corosync and are refused here.
//!
//! What corosync refuses only when it starts (totem timeouts, node ids, crypto keys, ...) is [`CorosyncConf::startup_check`]'s.

use core::fmt;
use core::net::IpAddr;
use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use corowire::cmap::Key;
use corowire::value::OwnedValue;

use super::config::FileError;

/// The largest file [`CorosyncConf::parse`] reads, in bytes.
pub const MAX_FILE_LEN: usize = 1 << 20;

/// The longest line corosync reads (its 512-byte buffer less the newline and the NUL).
const MAX_LINE_LEN: usize = 510;

/// The longest key name (corosync's `ICMAP_KEYNAME_MAXLEN` less the NUL).
const MAX_KEY_LEN: usize = 255;

/// What is wrong with a corosync.conf file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfErrorKind {
    /// The file could not be read (the reason, with the path).
    Read(String),
    /// The file is larger than [`MAX_FILE_LEN`].
    TooLarge,
    /// A line is not valid UTF-8.
    NotUtf8,
    /// A line is longer than corosync reads (510 bytes).
    LineTooLong,
    /// `{` with nothing before it.
    MissingSectionName,
    /// Something after a section's `{`.
    ExtraAfterOpeningBrace,
    /// A section path longer than a key name may be.
    SectionPathTooLong,
    /// A key name longer than 255 bytes.
    KeyPathTooLong,
    /// Something besides `}` on a closing line.
    ExtraAroundClosingBrace,
    /// `}` outside any section.
    UnexpectedClosingBrace,
    /// A line that is neither `name {`, `name: value` nor `}`.
    NotSectionOrKey,
    /// The file ends inside a section.
    MissingClosingBrace,
    /// A value that must be an integer in `min..=max` is not.
    NotInteger {
        /// The key (the full path, or the node key `nodelist.node.<i>.<name>`).
        key: String,
        /// The smallest value allowed.
        min: i128,
        /// The largest value allowed.
        max: i128,
        /// The value given.
        value: String,
    },
    /// A value outside the set corosync allows (coroparse's message, e.g.
    /// `Invalid system.sched_rr value`).
    Invalid(&'static str),
    /// A `logger_subsys` section without `subsys`.
    NoSubsys,
    /// A `logging_daemon` section without `name`.
    NoDaemonName,
    /// An item of `uidgid` other than `uid` or `gid`.
    UidGidItem,
    /// An item of a `member` section other than `memberaddr`.
    MemberItem,
    /// A user of `uidgid.uid` not in the user database.
    UnknownUser(String),
    /// A group of `uidgid.gid` not in the group database.
    UnknownGroup(String),
    /// `--nodeid`: no node of the node list has this id.
    UnknownNode(u32),
    /// A key name corosync would not store (3 to 255 characters of `[A-Za-z0-9._/:-]`).
    BadKeyName(String),
    /// `quorum.provider: corosync_votequorum` with neither a node list nor
    /// `quorum.expected_votes` (votequorum_readconfig refuses to start).
    NoExpectedVotes,
    /// Two nodes of the node list have the same `nodeid` (totemconfig.c refuses to start).
    DuplicateNodeId(u32),
    /// corosync parses the file but refuses to start with it
    /// ([`CorosyncConf::startup_check`]).
    Startup(StartupError),
    /// The path names something other than a regular file (a FIFO, a directory, a device,
    /// a socket): its kind. corosync opens it anyway — it blocks on a FIFO until a writer
    /// comes, and reads a directory or `/dev/null` as an empty file (`No interfaces
    /// defined`) — the server refuses at once.
    NotAFile {
        /// The path given.
        path: String,
        /// What it is: `a FIFO`, `a directory`, `a character device`, `a block device` or
        /// `a socket`.
        kind: &'static str,
    },
}

impl fmt::Display for ConfErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(reason) => write!(f, "Can't read file {reason}"),
            Self::TooLarge => write!(f, "File is larger than {MAX_FILE_LEN} bytes"),
            Self::NotUtf8 => f.write_str("Line is not valid UTF-8"),
            Self::LineTooLong => f.write_str("Line too long"),
            Self::MissingSectionName => f.write_str("Missing section name before opening bracket '{'"),
            Self::ExtraAfterOpeningBrace => f.write_str("Extra characters after opening bracket '{'"),
            Self::SectionPathTooLong => f.write_str("Start of section makes total cmap path too long"),
            Self::KeyPathTooLong => f.write_str("New key makes total cmap path too long"),
            Self::ExtraAroundClosingBrace => {
                f.write_str("Extra characters before or after closing bracket '}'")
            }
            Self::UnexpectedClosingBrace => f.write_str("Unexpected closing brace"),
            Self::NotSectionOrKey => f.write_str("Line is not opening or closing section or key value"),
            Self::MissingClosingBrace => f.write_str("Missing closing brace"),
            Self::NotInteger { key, min, max, value } => write!(
                f,
                "Value of key \"{key}\" is expected to be integer in range ({min}..{max}), but \"{value}\" was given"
            ),
            Self::Invalid(what) => f.write_str(what),
            Self::NoSubsys => f.write_str("No subsys key in logger_subsys directive"),
            Self::NoDaemonName => f.write_str("No name key in logging_daemon directive"),
            Self::UidGidItem => f.write_str("uidgid: Only uid and gid are allowed items"),
            Self::MemberItem => f.write_str("Only memberaddr is allowed in member section"),
            Self::UnknownUser(u) => {
                write!(f, "The '{u}' user is not found in /etc/passwd, please read the documentation.")
            }
            Self::UnknownGroup(g) => {
                write!(f, "The '{g}' group is not found in /etc/group, please read the documentation.")
            }
            Self::UnknownNode(id) => write!(f, "no node of the nodelist has nodeid {id}"),
            Self::BadKeyName(k) => write!(f, "Can't store key \"{k}\" into icmap: not a valid key name"),
            Self::NoExpectedVotes => {
                f.write_str("configuration error: nodelist or quorum.expected_votes must be configured!")
            }
            Self::DuplicateNodeId(id) => write!(f, "Nodeid {id} appears twice in corosync.conf"),
            Self::Startup(e) => e.fmt(f),
            Self::NotAFile { path, kind } => write!(f, "Can't read file {path}: it is {kind}, not a regular file"),
        }
    }
}

/// A corosync.conf error and the line it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    /// 1-based line number (corosync's count: the last line for [`ConfErrorKind::MissingClosingBrace`]);
    /// 0 when no line is concerned ([`ConfErrorKind::Read`], [`ConfErrorKind::TooLarge`]).
    pub line: usize,
    /// What is wrong.
    pub kind: ConfErrorKind,
}

impl fmt::Display for ConfError {
    /// `line N: WHAT`, or `WHAT` alone for line 0. corosync says `parser error: FILE:N: WHAT`
    /// (`corowire serve` does too, with the path it read).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "line {}: {}", self.line, self.kind)
        }
    }
}

impl core::error::Error for ConfError {}

/// totemconfig.c's `MINIMUM_TIMEOUT` (3 ticks of `HZ` 100), in ms.
const MINIMUM_TIMEOUT: u32 = 30;
/// totemconfig.c's `MINIMUM_TIMEOUT_HOLD` (`MINIMUM_TIMEOUT * 0.8 - 1000 / HZ`), in ms.
const MINIMUM_TIMEOUT_HOLD: u32 = 14;
/// knet's `KNET_MAX_HOST`: a node id of the knet transport is below it.
const KNET_MAX_HOST: u32 = 65536;
/// knet's `KNET_MIN_KEY_LEN`: the shortest key file, in bytes.
const KNET_MIN_KEY_LEN: usize = 128;

/// A file corosync 3.1.7 parses but refuses to start with (`exec/totemconfig.c`'s
/// `totem_config_read` and `totem_config_validate`), with corosync's own message (without
/// its trailing newline), so that `corowire serve` refuses it as `corosync` and
/// `corosync -t` do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartupError {
    /// `totem.transport` is not `udpu`, `udp` or `knet`.
    Transport,
    /// `totem.crypto_cipher` without `totem.crypto_hash`.
    CipherWithoutHash,
    /// Crypto is on and the key file (`totem.keyfile`, else `/etc/corosync/authkey`) cannot
    /// be opened: (path, `strerror`).
    KeyFile(String, String),
    /// The key file was opened but cannot be read: (path, `strerror`).
    KeyFileRead(String, String),
    /// The key file is shorter than knet's 1024 bits: (bits read, path).
    KeyTooShort(usize, String),
    /// The local node of a knet configuration has no `nodeid` (or 0).
    LocalNodeIdMissing,
    /// A node of a knet configuration has no `nodeid` (or 0): its address.
    NodeIdMissing(String),
    /// A node of a knet configuration has a `nodeid` of 65536 or more: its address.
    NodeIdTooLarge(String),
    /// Neither a node list with addresses nor a `totem.interface` section.
    NoInterfaces,
    /// `totem.version` is not 2 (or missing).
    Version,
    /// A totem timeout below its minimum: (corosync's name for it, its value in ms, the
    /// minimum). The value is the one corosync computes (`runtime.config.totem.*`).
    Timeout(&'static str, u32, u32),
    /// `token_retransmit` computed below 30 ms from `token` and
    /// `token_retransmits_before_loss_const` (not set itself).
    TokenRetransmitComputed,
    /// `totem.token_warning` above 100 (percent).
    TokenWarning(u32),
    /// The consensus timeout is below the join timeout: (consensus, join), in ms.
    ConsensusBelowJoin(u32, u32),
    /// A node's `ring<N>_addr` is neither an address nor a name that resolves to one of the
    /// IP family `totem.ip_version` allows: the address as written.
    NodeAddress(String),
    /// More than one link, and a node without `name`.
    MultiLinkWithoutName,
    /// Two nodes' addresses on one link are of different IP families: (the link, the
    /// address of the first node that differs, the first node's address), in icmap's key
    /// order of the nodes.
    MixedFamilies(u8, IpAddr, IpAddr),
    /// `totem.link_mode` is not `active`, `passive` or `rr`.
    LinkMode(String),
    /// More than one link with a transport other than knet: the number of links.
    TooManyLinks(usize),
    /// Crypto with a transport other than knet.
    CryptoNotKnet,
}

/// C's `%d` of an `unsigned int`.
fn as_c_int(v: u32) -> i32 {
    i32::from_ne_bytes(v.to_ne_bytes())
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const P: &str = "parse error in config: ";
        match self {
            Self::Transport => f.write_str("Invalid transport type. Should be udpu, udp or knet"),
            Self::CipherWithoutHash => {
                f.write_str("crypto_cipher requires crypto_hash with value other than none")
            }
            Self::KeyFile(path, why) => write!(f, "Could not open {path}: {why}"),
            Self::KeyFileRead(path, why) => write!(f, "Could not read {path}: {why}"),
            Self::KeyTooShort(bits, path) => {
                write!(f, "Could only read {bits} bits of minimum {} bits from {path}.", KNET_MIN_KEY_LEN * 8)
            }
            Self::LocalNodeIdMissing => f.write_str("Knet requires an explicit nodeid for the local node"),
            Self::NodeIdMissing(addr) => {
                write!(f, "Knet requires an explicit nodeid to be specified for address '{addr}'.")
            }
            Self::NodeIdTooLarge(addr) => {
                write!(f, "Knet requires nodeid to be less than {KNET_MAX_HOST} for address '{addr}'.")
            }
            Self::NoInterfaces => write!(f, "{P}No interfaces defined"),
            Self::Version => write!(f, "{P}This totem parser can only parse version 2 configurations."),
            Self::Timeout(what, value, min) => write!(
                f,
                "{P}The {what} parameter ({} ms) may not be less than ({min} ms).",
                as_c_int(*value)
            ),
            Self::TokenRetransmitComputed => {
                write!(f, "{P}Not appropriate token or token_retransmits_before_loss_const value set")
            }
            Self::TokenWarning(v) => write!(
                f,
                "{P}The token warning parameter ({}%) must be between 0 (disabled) and 100.",
                as_c_int(*v)
            ),
            Self::ConsensusBelowJoin(consensus, join) => write!(
                f,
                "{P}The consensus timeout parameter ({} ms) may not be less than join timeout ({} ms).",
                as_c_int(*consensus),
                as_c_int(*join)
            ),
            Self::NodeAddress(addr) => write!(f, "failed to parse node address '{addr}'"),
            Self::MultiLinkWithoutName => {
                write!(f, "{P}for a multi-link configuration, all nodes must have a 'name' attribute")
            }
            Self::MixedFamilies(link, addr, first) => {
                write!(
                    f,
                    "{P}Nodes for link {link} have different IP families (compared {addr} with {first})"
                )
            }
            Self::LinkMode(mode) => write!(
                f,
                "{P}The Knet link mode \"{mode}\" specified is invalid.  It must be active, passive or rr."
            ),
            Self::TooManyLinks(n) => {
                write!(f, "{P}{n} is too many configured interfaces for non-Knet transport.")
            }
            Self::CryptoNotKnet => {
                write!(f, "{P}crypto_cipher & crypto_hash are only valid for the Knet transport.")
            }
        }
    }
}

/// Whether a `uidgid` name is a user or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account {
    /// `uidgid.uid`: a user name.
    User,
    /// `uidgid.gid`: a group name.
    Group,
}

/// The parser's state: which kind of section the current line is in (coroparse.c's
/// `main_cp_cb_data_state`). A section inherits its parent's unless its path names another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    Totem,
    Interface,
    LoggerSubsys,
    UidGid,
    LoggingDaemon,
    Member,
    Quorum,
    QDevice,
    Nodelist,
    NodelistNode,
    System,
    Resources,
    ResourcesPoll,
}

/// What coroparse.c keeps across sections while it reads one `interface`, `logger_subsys`,
/// `logging_daemon` or the node list.
#[derive(Debug, Default)]
struct Pending {
    linknumber: u8,
    /// `totem.interface.<linknumber>.<name>` keys held until the section ends.
    link_items: Vec<(String, OwnedValue)>,
    /// `memberaddr` values, newest first (coroparse adds each at the list's head).
    members: Vec<String>,
    subsys: Option<String>,
    daemon_name: Option<String>,
    /// `logger_subsys` / `logging_daemon` items, newest first.
    log_items: Vec<(String, String)>,
    node_number: u32,
}

/// The keys a corosync.conf file gives, before corosync's derivations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CorosyncConf {
    keys: BTreeMap<String, OwnedValue>,
}

/// The integer types coroparse converts values to.
#[derive(Debug, Clone, Copy)]
enum Int {
    U8,
    U16,
    U32,
    I32,
    U64,
}

/// The type coroparse gives the item `path` in `state` (`None`: a string).
fn int_type(state: State, path: &str, key: &str) -> Option<Int> {
    const TOTEM_U32: &[&str] = &[
        "version",
        "nodeid",
        "threads",
        "token",
        "token_coefficient",
        "token_retransmit",
        "token_warning",
        "hold",
        "token_retransmits_before_loss_const",
        "join",
        "send_join",
        "consensus",
        "merge",
        "downcheck",
        "fail_recv_const",
        "seqno_unchanged_const",
        "rrp_token_expired_timeout",
        "rrp_problem_count_timeout",
        "rrp_problem_count_threshold",
        "rrp_problem_count_mcast_threshold",
        "rrp_autorecovery_check_timeout",
        "heartbeat_failures_allowed",
        "max_network_delay",
        "window_size",
        "max_messages",
        "miss_count_const",
        "knet_pmtud_interval",
        "knet_mtu",
        "knet_compression_threshold",
        "netmtu",
    ];
    match state {
        State::Quorum => match path.strip_prefix("quorum.")? {
            "expected_votes" | "votes" | "last_man_standing_window" | "leaving_timeout" => Some(Int::U32),
            "two_node"
            | "expected_votes_tracking"
            | "allow_downscale"
            | "wait_for_all"
            | "auto_tie_breaker"
            | "last_man_standing" => Some(Int::U8),
            _ => None,
        },
        State::QDevice => match path.strip_prefix("quorum.device.")? {
            "timeout" | "sync_timeout" | "votes" => Some(Int::U32),
            "master_wins" => Some(Int::U8),
            _ => None,
        },
        State::Totem => match path.strip_prefix("totem.")? {
            name if TOTEM_U32.contains(&name) => Some(Int::U32),
            "knet_compression_level" => Some(Int::I32),
            "config_version" => Some(Int::U64),
            _ => None,
        },
        State::NodelistNode => matches!(key, "nodeid" | "quorum_votes").then_some(Int::U32),
        State::Resources => (key == "watchdog_timeout").then_some(Int::U32),
        State::ResourcesPoll => (key == "poll_period").then_some(Int::U64),
        _ => None,
    }
}

/// coroparse.c's `safe_atoq` (`strtoll`, base 10, all of it, within the type's range) and
/// `str_to_ull` (`strtoull`, which takes a `-` as the negated value).
fn parse_int(ty: Int, key: &str, value: &str) -> Result<OwnedValue, ConfErrorKind> {
    let (min, max): (i128, i128) = match ty {
        Int::U8 => (0, u8::MAX.into()),
        Int::U16 => (0, u16::MAX.into()),
        Int::U32 => (0, u32::MAX.into()),
        Int::I32 => (i32::MIN.into(), i32::MAX.into()),
        Int::U64 => (0, u64::MAX.into()),
    };
    let error = || ConfErrorKind::NotInteger { key: key.to_owned(), min, max, value: value.to_owned() };
    let text = value.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error());
    }
    // strtoll and strtoull fail (ERANGE) beyond 64 bits.
    let magnitude: u64 = digits.parse().map_err(|_| error())?;
    let n = if negative { -i128::from(magnitude) } else { i128::from(magnitude) };
    let value = match ty {
        // strtoull negates what follows a '-'.
        Int::U64 => Ok(OwnedValue::UInt64(if negative { magnitude.wrapping_neg() } else { magnitude })),
        Int::U8 => u8::try_from(n).map(OwnedValue::UInt8),
        Int::U16 => u16::try_from(n).map(OwnedValue::UInt16),
        Int::U32 => u32::try_from(n).map(OwnedValue::UInt32),
        Int::I32 => i32::try_from(n).map(OwnedValue::Int32),
    };
    value.map_err(|_| error())
}

/// coroparse.c's checks of values with a fixed set of choices: `Some(message)` when `value`
/// is not one of them.
fn invalid_choice(state: State, path: &str, value: &str) -> Option<&'static str> {
    let (allowed, message): (&[&str], &'static str) = match (state, path) {
        (State::Totem, "totem.ip_version") => {
            (&["ipv4", "ipv6", "ipv6-4", "ipv4-6"], "Invalid ip_version type")
        }
        (State::Totem, "totem.crypto_cipher") => (
            &["none", "aes256", "aes192", "aes128"],
            "Invalid cipher type. Should be none, aes256, aes192 or aes128",
        ),
        (State::Totem, "totem.crypto_hash") => (
            &["none", "md5", "sha1", "sha256", "sha384", "sha512"],
            "Invalid hash type. Should be none, md5, sha1, sha256, sha384 or sha512",
        ),
        (State::Totem, "totem.crypto_model") => {
            (&["nss", "openssl"], "Invalid crypto model. Should be nss or openssl")
        }
        (State::Totem, "totem.knet_compression_model") => (
            &["zlib", "lz4", "lz4hc", "lzo2", "lzma", "bzip2", "zstd"],
            "Invalid compression model. Should be zlib, lz4, lz4hc, lzo2, lzma, bzip2 or zstd",
        ),
        (State::System, "system.qb_ipc_type") => (&["native", "shm", "socket"], "Invalid system.qb_ipc_type"),
        (State::System, "system.sched_rr") => (&["yes", "no"], "Invalid system.sched_rr value"),
        (State::System, "system.move_to_root_cgroup") => {
            (&["yes", "no", "auto"], "Invalid system.move_to_root_cgroup")
        }
        (State::System, "system.allow_knet_handle_fallback") => {
            (&["yes", "no"], "Invalid system.allow_knet_handle_fallback")
        }
        _ => return None,
    };
    (!allowed.contains(&value)).then_some(message)
}

/// coroparse.c's `remove_whitespace`: leading blanks off, then trailing blanks (and `:` and
/// `{` with `colon_and_brace`), always keeping the first character.
fn remove_whitespace(s: &str, colon_and_brace: bool) -> &str {
    let s = s.trim_start_matches([' ', '\t']);
    let mut end = s.len();
    while end > 1 {
        let c = s.as_bytes()[end - 1];
        if c == b' ' || c == b'\t' || (colon_and_brace && (c == b':' || c == b'{')) {
            end -= 1;
        } else {
            break;
        }
    }
    &s[..end]
}

/// The system's user or group database (`getpwnam_r`, `getgrnam_r`).
fn system_account(kind: Account, name: &str) -> Option<u32> {
    match kind {
        Account::User => nix::unistd::User::from_name(name).ok().flatten().map(|u| u.uid.as_raw()),
        Account::Group => nix::unistd::Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw()),
    }
}

/// One parse: the keys so far, the open sections and what [`Pending`] holds.
struct Parser<'l> {
    keys: BTreeMap<String, OwnedValue>,
    /// Open sections: (path, state).
    stack: Vec<(String, State)>,
    pending: Pending,
    lookup: &'l mut dyn FnMut(Account, &str) -> Option<u32>,
}

impl Parser<'_> {
    fn path(&self) -> &str {
        self.stack.last().map_or("", |(p, _)| p)
    }

    fn state(&self) -> State {
        self.stack.last().map_or(State::Normal, |&(_, s)| s)
    }

    fn set(&mut self, key: String, value: OwnedValue) -> Result<(), ConfErrorKind> {
        if !Key::new(key.as_bytes()).is_ok_and(|k| k.is_valid_server_name()) {
            return Err(ConfErrorKind::BadKeyName(key));
        }
        self.keys.insert(key, value);
        Ok(())
    }

    fn set_str(&mut self, key: String, value: &str) -> Result<(), ConfErrorKind> {
        self.set(key, str_value(value))
    }

    fn line(&mut self, line: &str) -> Result<(), ConfErrorKind> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_end_matches([' ', '\t']);
        let first = line.trim_start_matches([' ', '\t']);
        if first.is_empty() || first.starts_with('#') {
            return Ok(());
        }
        if let Some((before, after)) = line.split_once('{') {
            let section = remove_whitespace(before, true);
            if section.is_empty() {
                return Err(ConfErrorKind::MissingSectionName);
            }
            if !after.trim_matches([' ', '\t']).is_empty() {
                return Err(ConfErrorKind::ExtraAfterOpeningBrace);
            }
            let path = self.join(section).ok_or(ConfErrorKind::SectionPathTooLong)?;
            let state = self.section_start(&path);
            self.stack.push((path, state));
            return Ok(());
        }
        if let Some((before, after)) = line.split_once(':') {
            let key = remove_whitespace(before, true);
            let value = remove_whitespace(after, false);
            let path = self.join(key).ok_or(ConfErrorKind::KeyPathTooLong)?;
            return self.item(&path, key, value);
        }
        if line.contains('}') {
            if remove_whitespace(line, false) != "}" {
                return Err(ConfErrorKind::ExtraAroundClosingBrace);
            }
            if self.stack.is_empty() {
                return Err(ConfErrorKind::UnexpectedClosingBrace);
            }
            self.section_end()?;
            self.stack.pop();
            return Ok(());
        }
        Err(ConfErrorKind::NotSectionOrKey)
    }

    /// `path.name` (or `name` at the top), if it fits a key name.
    fn join(&self, name: &str) -> Option<String> {
        let path = self.path();
        if path.len() + name.len() + 1 > MAX_KEY_LEN {
            return None;
        }
        Some(if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") })
    }

    /// The state of a new section at `path` (coroparse.c's `PARSER_CB_SECTION_START`).
    fn section_start(&mut self, path: &str) -> State {
        let p = &mut self.pending;
        match path {
            "totem.interface" => {
                p.linknumber = 0;
                p.link_items.clear();
                p.members.clear();
                State::Interface
            }
            "totem" => State::Totem,
            "system" => State::System,
            "logging.logger_subsys" => {
                p.log_items.clear();
                p.subsys = None;
                State::LoggerSubsys
            }
            "logging.logging_daemon" => {
                p.log_items.clear();
                p.subsys = None;
                p.daemon_name = None;
                State::LoggingDaemon
            }
            "uidgid" => State::UidGid,
            "totem.interface.member" => State::Member,
            "quorum" => State::Quorum,
            "quorum.device" => State::QDevice,
            "nodelist" => {
                p.node_number = 0;
                State::Nodelist
            }
            "nodelist.node" => State::NodelistNode,
            "resources" => State::Resources,
            "resources.system"
            | "resources.system.memory_used"
            | "resources.process"
            | "resources.process.memory_used" => State::ResourcesPoll,
            _ => self.state(),
        }
    }

    /// One `key: value` at `path` (coroparse.c's `PARSER_CB_ITEM`).
    fn item(&mut self, path: &str, key: &str, value: &str) -> Result<(), ConfErrorKind> {
        let state = self.state();
        if let Some(message) = invalid_choice(state, path, value) {
            return Err(ConfErrorKind::Invalid(message));
        }
        match state {
            State::Interface => return self.interface_item(path, key, value),
            State::LoggerSubsys | State::LoggingDaemon => {
                let p = &mut self.pending;
                match key {
                    "subsys" => p.subsys = Some(value.to_owned()),
                    "name" if state == State::LoggingDaemon => p.daemon_name = Some(value.to_owned()),
                    _ => p.log_items.insert(0, (key.to_owned(), value.to_owned())),
                }
                return Ok(());
            }
            State::UidGid => {
                let (kind, what) = match key {
                    "uid" => (Account::User, "uid"),
                    "gid" => (Account::Group, "gid"),
                    _ => return Err(ConfErrorKind::UidGidItem),
                };
                let Some(id) = (self.lookup)(kind, value) else {
                    return Err(match kind {
                        Account::User => ConfErrorKind::UnknownUser(value.to_owned()),
                        Account::Group => ConfErrorKind::UnknownGroup(value.to_owned()),
                    });
                };
                return self.set(format!("uidgid.config.{what}.{id}"), OwnedValue::UInt8(1));
            }
            State::Member => {
                if key != "memberaddr" {
                    return Err(ConfErrorKind::MemberItem);
                }
                self.pending.members.insert(0, value.to_owned());
                return Ok(());
            }
            _ => {}
        }
        let name = if state == State::NodelistNode {
            format!("nodelist.node.{}.{key}", self.pending.node_number)
        } else {
            path.to_owned()
        };
        let value = match int_type(state, path, key) {
            Some(ty) => parse_int(ty, &name, value)?,
            None => str_value(value),
        };
        self.set(name, value)
    }

    /// An item of `totem.interface`: held until the section ends, or a plain string.
    fn interface_item(&mut self, path: &str, key: &str, value: &str) -> Result<(), ConfErrorKind> {
        let ty = match key {
            "linknumber" => {
                self.pending.linknumber = match parse_int(Int::U8, path, value)? {
                    OwnedValue::UInt8(n) => n,
                    _ => 0,
                };
                return Ok(());
            }
            "bindnetaddr" | "mcastaddr" | "broadcast" | "knet_transport" => None,
            "mcastport" => Some(Int::U16),
            "ttl" | "knet_link_priority" => Some(Int::U8),
            "knet_ping_interval" | "knet_ping_timeout" | "knet_ping_precision" | "knet_pong_count" => {
                Some(Int::U32)
            }
            _ => return self.set_str(path.to_owned(), value),
        };
        let value = match ty {
            Some(ty) => parse_int(ty, path, value)?,
            None => str_value(value),
        };
        self.pending.link_items.retain(|(k, _)| k != key);
        self.pending.link_items.push((key.to_owned(), value));
        Ok(())
    }

    /// The end of the innermost section (coroparse.c's `PARSER_CB_SECTION_END`).
    fn section_end(&mut self) -> Result<(), ConfErrorKind> {
        match self.state() {
            State::Interface => {
                let link = self.pending.linknumber;
                for (name, value) in core::mem::take(&mut self.pending.link_items) {
                    self.set(format!("totem.interface.{link}.{name}"), value)?;
                }
                for (j, addr) in core::mem::take(&mut self.pending.members).into_iter().enumerate() {
                    self.set_str(format!("totem.interface.{link}.member.{j}"), &addr)?;
                }
            }
            State::LoggerSubsys => {
                let subsys = self.pending.subsys.take().ok_or(ConfErrorKind::NoSubsys)?;
                for (key, value) in core::mem::take(&mut self.pending.log_items) {
                    self.set_str(format!("logging.logger_subsys.{subsys}.{key}"), &value)?;
                }
                self.set_str(format!("logging.logger_subsys.{subsys}.subsys"), &subsys)?;
            }
            State::LoggingDaemon => {
                let name = self.pending.daemon_name.take().ok_or(ConfErrorKind::NoDaemonName)?;
                let subsys = self.pending.subsys.take();
                let prefix = match (name.as_str(), &subsys) {
                    ("corosync", None) => "logging".to_owned(),
                    ("corosync", Some(s)) => format!("logging.logger_subsys.{s}"),
                    (n, None) => format!("logging.logging_daemon.{n}"),
                    (n, Some(s)) => format!("logging.logging_daemon.{n}.{s}"),
                };
                for (key, value) in core::mem::take(&mut self.pending.log_items) {
                    self.set_str(format!("{prefix}.{key}"), &value)?;
                }
                if let Some(s) = &subsys {
                    self.set_str(format!("{prefix}.subsys"), s)?;
                }
                if name != "corosync" {
                    self.set_str(format!("{prefix}.name"), &name)?;
                }
            }
            State::NodelistNode => self.pending.node_number += 1,
            _ => {}
        }
        Ok(())
    }
}

impl CorosyncConf {
    /// Parses corosync.conf text (see the [module documentation](self)), resolving `uidgid`
    /// names through the system's user and group databases.
    ///
    /// # Errors
    /// The first error, with its line; [`ConfErrorKind::DuplicateNodeId`] (line 0). What
    /// corosync refuses only when it starts is [`CorosyncConf::startup_check`]'s.
    pub fn parse(text: &[u8]) -> Result<Self, ConfError> {
        Self::parse_with(text, &mut system_account)
    }

    /// [`CorosyncConf::parse`] with `lookup` resolving `uidgid` user and group names to ids
    /// (`None`: unknown).
    ///
    /// # Errors
    /// The first error, with its line.
    pub fn parse_with(
        text: &[u8],
        lookup: &mut dyn FnMut(Account, &str) -> Option<u32>,
    ) -> Result<Self, ConfError> {
        if text.len() > MAX_FILE_LEN {
            return Err(ConfError { line: 0, kind: ConfErrorKind::TooLarge });
        }
        let mut parser =
            Parser { keys: BTreeMap::new(), stack: Vec::new(), pending: Pending::default(), lookup };
        let mut lines = 0;
        for (i, raw) in text.split_inclusive(|&b| b == b'\n').enumerate() {
            lines = i + 1;
            let error = |kind| ConfError { line: i + 1, kind };
            let content = raw.strip_suffix(b"\n").unwrap_or(raw);
            if content.len() > MAX_LINE_LEN {
                return Err(error(ConfErrorKind::LineTooLong));
            }
            let line = core::str::from_utf8(content).map_err(|_| error(ConfErrorKind::NotUtf8))?;
            if line.contains('\0') {
                // corosync's strlen stops at the NUL, so the line looks unfinished to it.
                return Err(error(ConfErrorKind::LineTooLong));
            }
            parser.line(line).map_err(error)?;
        }
        if !parser.stack.is_empty() {
            return Err(ConfError { line: lines, kind: ConfErrorKind::MissingClosingBrace });
        }
        let conf = Self { keys: parser.keys };
        let positions = conf.node_positions();
        let mut ids: Vec<u32> = positions.iter().filter_map(|&p| conf.nodeid_at(p)).collect();
        ids.sort_unstable();
        if let Some(twice) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfError { line: 0, kind: ConfErrorKind::DuplicateNodeId(twice[0]) });
        }
        Ok(conf)
    }

    /// Reads and parses the file at `path` ([`CorosyncConf::parse`]).
    ///
    /// Unlike corosync, which opens whatever it is given (and blocks on a FIFO until a
    /// writer comes), only a regular file (or a symlink to one) is read: anything else is
    /// refused at once, without waiting.
    ///
    /// # Errors
    /// [`ConfErrorKind::Read`] (line 0) if it cannot be read, [`ConfErrorKind::NotAFile`]
    /// for a FIFO, directory, device or socket, else as [`CorosyncConf::parse`].
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        let text = super::config::read_regular_file(path, MAX_FILE_LEN).map_err(|e| {
            let kind = match e {
                FileError::NotAFile { kind } => {
                    ConfErrorKind::NotAFile { path: path.display().to_string(), kind }
                }
                e => ConfErrorKind::Read(format!("{}: {e}", path.display())),
            };
            ConfError { line: 0, kind }
        })?;
        Self::parse(&text)
    }

    /// corosync 3.1.7's checks when it starts, for the node at `local_pos` of the node list
    /// (`exec/totemconfig.c`: `totem_config_read`, then `totem_config_validate`, in their
    /// order; `corosync -t` makes them too): the transport, crypto (`crypto_cipher` needs
    /// `crypto_hash`; with either on, the key file `totem.keyfile`, else
    /// `/etc/corosync/authkey`, must hold at least 1024 bits — read and dropped, as corosync
    /// reads it; an inline `totem.key` is taken as is), knet's node ids (not 0, below 65536),
    /// every node address resolvable (of the IP family `totem.ip_version` allows), at least
    /// one interface, `totem.version` 2, the totem timeouts corosync computes
    /// (`runtime.config.totem.*`) against their minimums (30 ms, hold 14 ms; consensus not
    /// below join; `token_warning` at most 100), names on every node with several links,
    /// one IP family per link, `totem.link_mode`, and crypto or several links only with knet.
    ///
    /// Not checked, so `corowire serve` starts where corosync would not: a node list in which
    /// no node has a local address (corosync: `No valid name found for local host`; the
    /// server picks the lowest id), interface details (`ttl`, `mcastport`, multicast
    /// addresses, the number of links per node), an inline `totem.key`'s length,
    /// and votequorum's own refusals other than [`ConfErrorKind::NoExpectedVotes`] (those the
    /// quorum engine refuses when the server binds).
    ///
    /// Then votequorum's (`votequorum_readconfig`, when the service starts): with
    /// `quorum.provider: corosync_votequorum`, a node list or `quorum.expected_votes`.
    ///
    /// # Errors
    /// The first check that fails (line 0): [`ConfErrorKind::Startup`] with corosync's words,
    /// or [`ConfErrorKind::NoExpectedVotes`].
    pub fn startup_check(&self, local_pos: Option<u32>) -> Result<(), ConfError> {
        let error = |kind| ConfError { line: 0, kind };
        self.totem_check(local_pos).map_err(|e| error(ConfErrorKind::Startup(e)))?;
        let votequorum = self.get_str("quorum.provider") == Some("corosync_votequorum");
        if votequorum && self.node_positions().is_empty() && self.get("quorum.expected_votes").is_none() {
            return Err(error(ConfErrorKind::NoExpectedVotes));
        }
        Ok(())
    }

    /// totemconfig.c's part of [`CorosyncConf::startup_check`].
    fn totem_check(&self, local_pos: Option<u32>) -> Result<(), StartupError> {
        let transport = self.get_str("totem.transport").unwrap_or("knet");
        if !matches!(transport, "udpu" | "udp" | "knet") {
            return Err(StartupError::Transport);
        }
        let knet = transport == "knet";
        let cipher = self.get_str("totem.crypto_cipher").unwrap_or("none");
        let hash = self.get_str("totem.crypto_hash").unwrap_or("none");
        if cipher != "none" && hash == "none" {
            return Err(StartupError::CipherWithoutHash);
        }
        let crypto = cipher != "none" || hash != "none";
        if crypto {
            self.check_key()?;
        }
        let members = self.node_addresses(knet, local_pos)?;
        let links = self.links();
        let bindnetaddr = self
            .keys
            .keys()
            .any(|k| k.strip_prefix("totem.interface.").is_some_and(|rest| rest.ends_with(".bindnetaddr")));
        if links.is_empty() && !bindnetaddr {
            return Err(StartupError::NoInterfaces);
        }
        if self.get_u32("totem.version") != Some(2) {
            return Err(StartupError::Version);
        }
        self.check_timeouts()?;
        if links.len() > 1
            && self.node_positions().iter().any(|p| self.get(&format!("nodelist.node.{p}.name")).is_none())
        {
            return Err(StartupError::MultiLinkWithoutName);
        }
        for link in 0..8 {
            let mut on_link = members.iter().filter(|m| m.0 == link).map(|m| m.1);
            if let Some(first) = on_link.next() {
                if let Some(other) = on_link.find(|a| a.is_ipv4() != first.is_ipv4()) {
                    return Err(StartupError::MixedFamilies(link, other, first));
                }
            }
        }
        let link_mode = self.get_str("totem.link_mode").unwrap_or("passive");
        if !matches!(link_mode, "active" | "passive" | "rr") {
            return Err(StartupError::LinkMode(link_mode.to_owned()));
        }
        if !knet && links.len() > 1 {
            return Err(StartupError::TooManyLinks(links.len()));
        }
        if !knet && crypto {
            return Err(StartupError::CryptoNotKnet);
        }
        Ok(())
    }

    /// totemconfig.c's `totem_config_keyread`: the key file can be read and is long enough.
    fn check_key(&self) -> Result<(), StartupError> {
        if self.get("totem.key").is_some() && self.get("totem.keyfile").is_none() {
            return Ok(());
        }
        let path = self.get_str("totem.keyfile").unwrap_or("/etc/corosync/authkey");
        let strerror = |e: &std::io::Error| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)).desc();
        // O_NONBLOCK: a FIFO reads as empty (too short) instead of blocking, as corosync would.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| StartupError::KeyFile(path.to_owned(), strerror(&e).into()))?;
        let mut key = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, 4096), &mut key)
            .map_err(|e| StartupError::KeyFileRead(path.to_owned(), strerror(&e).into()))?;
        if key.len() < KNET_MIN_KEY_LEN {
            return Err(StartupError::KeyTooShort(key.len() * 8, path.to_owned()));
        }
        Ok(())
    }

    /// totemconfig.c's `put_nodelist_members_to_config`: knet's node id checks, the local
    /// node's first, then every node's addresses resolved (`totemip_parse`), in icmap's key
    /// order (`nodelist.node.10` before `nodelist.node.2`). The members as (link, address).
    fn node_addresses(&self, knet: bool, local_pos: Option<u32>) -> Result<Vec<(u8, IpAddr)>, StartupError> {
        let listed =
            ["name", "ring0_addr"].iter().any(|f| self.get(&format!("nodelist.node.0.{f}")).is_some());
        let mut members = Vec::new();
        if !listed {
            return Ok(members);
        }
        if knet && local_pos.is_some_and(|p| self.nodeid_at(p).unwrap_or(0) == 0) {
            return Err(StartupError::LocalNodeIdMissing);
        }
        let version = match self.get_str("totem.ip_version") {
            Some(v @ ("ipv4" | "ipv6" | "ipv6-4" | "ipv4-6")) => v,
            _ if self.get_str("totem.transport") == Some("udp") => "ipv4",
            _ => "ipv6-4",
        };
        let mut positions: Vec<String> = self.node_positions().iter().map(u32::to_string).collect();
        positions.sort_unstable();
        for pos in positions {
            let nodeid = self.get_u32(&format!("nodelist.node.{pos}.nodeid")).unwrap_or(0);
            for link in 0..8 {
                let Some(addr) = self.get_str(&format!("nodelist.node.{pos}.ring{link}_addr")) else {
                    continue;
                };
                if knet && nodeid == 0 {
                    return Err(StartupError::NodeIdMissing(addr.to_owned()));
                }
                if knet && nodeid >= KNET_MAX_HOST {
                    return Err(StartupError::NodeIdTooLarge(addr.to_owned()));
                }
                let ip = resolve(addr, version).ok_or_else(|| StartupError::NodeAddress(addr.to_owned()))?;
                members.push((link, ip));
            }
        }
        Ok(members)
    }

    /// totemconfig.c's `totem_volatile_config_validate` on the values corosync computes.
    fn check_timeouts(&self) -> Result<(), StartupError> {
        let runtime = self.totem_runtime();
        let value = |name: &str| {
            let key = format!("runtime.config.totem.{name}");
            match runtime.iter().find(|(k, _)| *k == key) {
                Some((_, OwnedValue::UInt32(v))) => *v,
                _ => 0,
            }
        };
        let at_least = |name: &str, what: &'static str, min: u32| {
            let v = value(name);
            if v < min {
                Err(StartupError::Timeout(what, v, min))
            } else {
                Ok(())
            }
        };
        at_least("max_network_delay", "max_network_delay", MINIMUM_TIMEOUT)?;
        at_least("token", "token timeout", MINIMUM_TIMEOUT)?;
        let warning = value("token_warning");
        if warning > 100 {
            return Err(StartupError::TokenWarning(warning));
        }
        if value("token_retransmit") < MINIMUM_TIMEOUT && self.get("totem.token_retransmit").is_none() {
            return Err(StartupError::TokenRetransmitComputed);
        }
        at_least("token_retransmit", "token retransmit timeout", MINIMUM_TIMEOUT)?;
        at_least("hold", "token hold timeout", MINIMUM_TIMEOUT_HOLD)?;
        at_least("join", "join timeout", MINIMUM_TIMEOUT)?;
        at_least("consensus", "consensus timeout", MINIMUM_TIMEOUT)?;
        let (consensus, join) = (value("consensus"), value("join"));
        if consensus < join {
            return Err(StartupError::ConsensusBelowJoin(consensus, join));
        }
        at_least("merge", "merge timeout", MINIMUM_TIMEOUT)?;
        at_least("downcheck", "downcheck timeout", MINIMUM_TIMEOUT)
    }

    /// The keys the file gives, in key order.
    pub fn file_keys(&self) -> impl Iterator<Item = (&str, &OwnedValue)> {
        self.keys.iter().map(|(k, v)| (k.as_str(), v))
    }

    fn get(&self, key: &str) -> Option<&OwnedValue> {
        self.keys.get(key)
    }

    fn get_u32(&self, key: &str) -> Option<u32> {
        match self.get(key)? {
            OwnedValue::UInt32(n) => Some(*n),
            _ => None,
        }
    }

    fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            OwnedValue::String(s) => core::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    /// The node positions `i` of `nodelist.node.<i>.*`, in order.
    fn node_positions(&self) -> Vec<u32> {
        let mut positions: Vec<u32> = self
            .keys
            .range("nodelist.node.".to_owned()..)
            .map_while(|(k, _)| k.strip_prefix("nodelist.node."))
            .filter_map(|rest| rest.split_once('.').and_then(|(i, _)| i.parse().ok()))
            .collect();
        positions.sort_unstable();
        positions.dedup();
        positions
    }

    /// The node id of the node at position `pos` of the node list, if it has one.
    pub fn nodeid_at(&self, pos: u32) -> Option<u32> {
        self.get_u32(&format!("nodelist.node.{pos}.nodeid"))
    }

    /// The ids of the nodes that have no `ring0_addr`: corosync starts with them in the node
    /// list, but has no address to reach them, so they never join.
    pub fn addressless_nodes(&self) -> Vec<u32> {
        let positions = self.node_positions().into_iter();
        positions
            .filter(|p| self.get(&format!("nodelist.node.{p}.ring0_addr")).is_none())
            .filter_map(|p| self.nodeid_at(p))
            .collect()
    }

    /// The position in the node list of the node with id `nodeid`.
    pub fn position_of(&self, nodeid: u32) -> Option<u32> {
        self.node_positions().into_iter().find(|&p| self.nodeid_at(p) == Some(nodeid))
    }

    /// The local node's position as totemconfig.c's `find_local_node` finds it, in its order:
    /// the host name (`uname`'s, here `/proc/sys/kernel/hostname`), then shorter by its last
    /// dot-separated part each time, then compared to the nodes' names up to their first dot;
    /// then, for each address of this machine in `getifaddrs` order, its name
    /// (`getnameinfo`), that name up to its first dot, and (IPv4 only, as corosync's
    /// `sizeof(struct sockaddr)` allows) the address itself; last, the first node whose
    /// `name` or `ring0_addr` resolves to an address of this machine. Each step takes the
    /// first node, in icmap's key order (`nodelist.node.10` before `nodelist.node.2`), whose
    /// `name` or `ring0_addr` is the name it tries. `None` when none matches (then corosync
    /// refuses to start, and [`CorosyncConf::local_node_pos`] falls back).
    pub fn local_address_pos(&self) -> Option<u32> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let mut name = host.trim_end_matches('\n');
        if let Some(pos) = self.node_by_name(name, false) {
            return Some(pos);
        }
        while let Some((shorter, _)) = name.rsplit_once('.') {
            name = shorter;
            if let Some(pos) = self.node_by_name(name, false) {
                return Some(pos);
            }
        }
        if let Some(pos) = self.node_by_name(name, true) {
            return Some(pos);
        }
        let local = local_addresses();
        for &ip in &local {
            if let Some(full) = crate::sys::dns::name_of(ip) {
                let short = full.split_once('.').map(|(short, _)| short);
                if let Some(pos) = [Some(full.as_str()), short]
                    .into_iter()
                    .flatten()
                    .find_map(|n| self.node_by_name(n, false))
                {
                    return Some(pos);
                }
            }
            if let Some(pos) = ip.is_ipv4().then(|| self.node_by_name(&ip.to_string(), false)).flatten() {
                return Some(pos);
            }
        }
        self.node_names().find_map(|(pos, name)| {
            let addrs = (name, 0).to_socket_addrs().ok()?;
            addrs.map(|a| a.ip()).any(|a| local.contains(&a)).then_some(pos)
        })
    }

    /// Every node's `name` and `ring0_addr`, in icmap's key order, with its position.
    fn node_names(&self) -> impl Iterator<Item = (u32, &str)> {
        self.keys
            .range("nodelist.node.".to_owned()..)
            .map_while(|(k, v)| Some((k.strip_prefix("nodelist.node.")?, v)))
            .filter_map(|(rest, value)| {
                let (pos, field) = rest.split_once('.')?;
                let OwnedValue::String(name) = value else { return None };
                let name = core::str::from_utf8(name).ok()?;
                matches!(field, "name" | "ring0_addr").then_some(())?;
                Some((pos.parse().ok()?, name))
            })
    }

    /// totemconfig.c's `nodelist_byname`: the first node whose `name` or `ring0_addr` is
    /// `find` (with `strip_domain`, the node's up to its first dot).
    fn node_by_name(&self, find: &str, strip_domain: bool) -> Option<u32> {
        self.node_names().find_map(|(pos, name)| {
            let name = if strip_domain { name.split('.').next().unwrap_or(name) } else { name };
            (name == find).then_some(pos)
        })
    }

    /// The local node's position as corosync finds it (totemconfig.c's `find_local_node`,
    /// [`CorosyncConf::local_address_pos`]); else the node with the lowest id, so that a file
    /// written for other machines still serves. `None` without a node list.
    pub fn local_node_pos(&self) -> Option<u32> {
        let positions = self.node_positions();
        self.local_address_pos()
            .or_else(|| positions.iter().copied().min_by_key(|&p| (self.nodeid_at(p).unwrap_or(u32::MAX), p)))
    }

    /// Every key corosync 3.1.7 presents for this file, on the node at `local_pos` of the
    /// node list (see [`CorosyncConf::local_node_pos`]), in key order: the file's keys and
    /// what corosync derives from them — `internal_configuration.service.*`,
    /// `nodelist.local_node_pos`, `resources.*` defaults, `runtime.blackbox.*`,
    /// `runtime.force_gather`, `runtime.config.totem.*` (totemconfig.c's timeouts, with
    /// `token_coefficient` for more than two nodes, and each link's knet ping timers) and
    /// `totem.interface.<link>.bindnetaddr` from the local node's `ring<link>_addr`.
    /// Not included: `runtime.votequorum.*`, `runtime.members.*`, `runtime.services.*`
    /// and other live counters.
    pub fn presented_keys(&self, local_pos: Option<u32>) -> Vec<(String, OwnedValue)> {
        let mut keys = self.keys.clone();
        let mut put = |key: &str, value: OwnedValue| {
            keys.insert(key.to_owned(), value);
        };
        let services = ["cmap", "cfg", "cpg", "quorum", "pload", "votequorum", "mon", "wd"];
        // votequorum is loaded (and listed) only as the quorum provider; the others keep their
        // numbers.
        let votequorum = self.get_str("quorum.provider") == Some("corosync_votequorum");
        for (i, name) in services.iter().enumerate().filter(|&(_, &n)| n != "votequorum" || votequorum) {
            put(&format!("internal_configuration.service.{i}.name"), str_value(&format!("corosync_{name}")));
            put(&format!("internal_configuration.service.{i}.ver"), OwnedValue::UInt32(0));
        }
        if let Some(pos) = local_pos {
            put("nodelist.local_node_pos", OwnedValue::UInt32(pos));
            // config_convert_nodelist_to_interface: the local node's ring<N>_addr.
            let prefix = format!("nodelist.node.{pos}.ring");
            for (key, value) in self.keys.range(prefix.clone()..) {
                let Some(rest) = key.strip_prefix(&prefix) else { break };
                if let Some(link) = rest.strip_suffix("_addr").filter(|l| l.parse::<u8>().is_ok()) {
                    put(&format!("totem.interface.{link}.bindnetaddr"), value.clone());
                }
            }
        }
        for (resource, current) in
            [("load_15min", OwnedValue::Double(0.0)), ("memory_used", OwnedValue::Int32(0))]
        {
            let base = format!("resources.system.{resource}");
            put(&format!("{base}.current"), current);
            put(&format!("{base}.last_updated"), OwnedValue::UInt64(0));
            // mon.c reads a configured poll_period as a string, finds coroparse's u64, and
            // writes its default over it.
            put(&format!("{base}.poll_period"), OwnedValue::UInt64(3000));
            put(&format!("{base}.state"), str_value("stopped"));
        }
        let watchdog = self.get_u32("resources.watchdog_timeout").unwrap_or(6);
        put("resources.watchdog_timeout", OwnedValue::UInt32(watchdog));
        put("runtime.blackbox.dump_flight_data", str_value("no"));
        put("runtime.blackbox.dump_state", str_value("no"));
        put("runtime.force_gather", str_value("no"));
        for (key, value) in self.totem_runtime() {
            put(&key, value);
        }
        keys.into_iter().collect()
    }

    /// totemconfig.c's `totem_volatile_config_read` and `calc_knet_ping_timers`: the
    /// `runtime.config.totem.*` keys.
    fn totem_runtime(&self) -> Vec<(String, OwnedValue)> {
        let configured = |name: &str, default: u32, allow_zero: bool| {
            self.get_u32(&format!("totem.{name}")).filter(|&v| allow_zero || v != 0).unwrap_or(default)
        };
        let mut out = Vec::new();
        let mut put =
            |name: &str, v: u32| out.push((format!("runtime.config.totem.{name}"), OwnedValue::UInt32(v)));
        let retransmits = configured("token_retransmits_before_loss_const", 4, false);
        let mut token = configured("token", 3000, false);
        // Nodes with a ring0 address (interface 0's member count).
        let members = self
            .node_positions()
            .into_iter()
            .filter(|p| self.get(&format!("nodelist.node.{p}.ring0_addr")).is_some())
            .count();
        if members > 2 {
            let coefficient = self.get_u32("totem.token_coefficient").unwrap_or(650);
            // `token += (member_count - 2) * token_coefficient` in C's unsigned arithmetic.
            let extra = u32::try_from(members - 2).unwrap_or(u32::MAX).wrapping_mul(coefficient);
            token = token.wrapping_add(extra);
        }
        put("token_retransmits_before_loss_const", retransmits);
        put("token", token);
        put("token_warning", configured("token_warning", 75, true));
        for (name, default) in [
            ("max_network_delay", 50),
            ("window_size", 50),
            ("max_messages", 17),
            ("miss_count_const", 5),
            ("knet_pmtud_interval", 30),
        ] {
            put(name, configured(name, default, false));
        }
        put("knet_mtu", configured("knet_mtu", 0, false));
        // The C code's float arithmetic, truncated to an integer (HZ is 100).
        let token_retransmit =
            configured("token_retransmit", c_int(f64::from(token) / (f64::from(retransmits) + 0.2)), false);
        put("token_retransmit", token_retransmit);
        put("hold", configured("hold", c_int(f64::from(token_retransmit) * 0.8 - 10.0), false));
        put("join", configured("join", 50, false));
        put("consensus", configured("consensus", c_int(f64::from((1.2 * f64::from(token)) as f32)), false));
        for (name, default) in
            [("merge", 200), ("downcheck", 1000), ("fail_recv_const", 2500), ("seqno_unchanged_const", 30)]
        {
            put(name, configured(name, default, false));
        }
        for name in ["send_join", "heartbeat_failures_allowed", "knet_compression_threshold"] {
            put(name, configured(name, 0, true));
        }
        let level = match self.get("totem.knet_compression_level") {
            Some(OwnedValue::Int32(n)) => *n,
            _ => 0,
        };
        out.push(("runtime.config.totem.knet_compression_level".into(), OwnedValue::Int32(level)));
        let model = self.get_str("totem.knet_compression_model").unwrap_or("none");
        out.push(("runtime.config.totem.knet_compression_model".into(), str_value(model)));
        for (name, default) in [("block_unlisted_ips", 1), ("cancel_token_hold_on_retransmit", 0)] {
            let value = match self.get_str(&format!("totem.{name}")) {
                Some("yes") => 1,
                Some("no") => 0,
                _ => default,
            };
            out.push((format!("runtime.config.totem.{name}"), OwnedValue::UInt32(value)));
        }
        for link in self.links() {
            let iface =
                |name: &str| self.get_u32(&format!("totem.interface.{link}.{name}")).filter(|&v| v != 0);
            let pongs = iface("knet_pong_count").unwrap_or(2);
            let timeout = iface("knet_ping_timeout").unwrap_or(token / pongs);
            let interval = iface("knet_ping_interval").unwrap_or(token / pongs.saturating_mul(2));
            let base = format!("runtime.config.totem.interface.{link}");
            out.push((format!("{base}.knet_ping_timeout"), OwnedValue::UInt32(timeout)));
            out.push((format!("{base}.knet_ping_interval"), OwnedValue::UInt32(interval)));
        }
        out
    }

    /// The links in use: every `N` of a node's `ring<N>_addr` (0 to 7, knet's links).
    fn links(&self) -> Vec<u8> {
        let mut links: Vec<u8> = self
            .keys
            .keys()
            .filter_map(|k| k.strip_prefix("nodelist.node."))
            .filter_map(|rest| rest.split_once(".ring").and_then(|(_, r)| r.strip_suffix("_addr")))
            .filter_map(|n| n.parse().ok())
            .filter(|&n| n < 8)
            .collect();
        links.sort_unstable();
        links.dedup();
        links
    }
}

/// totemconfig.c's `(int)` conversion of a timeout computed in floating point, passed on
/// as a `uint32_t`: truncation toward zero, a negative result kept as its two's complement,
/// and — as x86-64's `cvttsd2si` does for a value out of `int`'s range — `INT_MIN` (so
/// `token: 4294967295` gives `consensus` 2147483648, as the real daemon shows).
fn c_int(x: f64) -> u32 {
    let int = if x.is_nan() || x >= 2_147_483_648.0 || x <= -2_147_483_649.0 {
        i32::MIN
    } else {
        // In range: `as` truncates toward zero, as C does.
        x as i32
    };
    u32::from_ne_bytes(int.to_ne_bytes())
}

fn str_value(s: &str) -> OwnedValue {
    OwnedValue::String(s.as_bytes().to_vec())
}

/// totemip.c's `totemip_parse`: `name`'s address (`name` itself, or the first address
/// `getaddrinfo` gives of the family `ip_version` allows or prefers: `ipv4`, `ipv6`,
/// `ipv6-4`, `ipv4-6`).
fn resolve(name: &str, ip_version: &str) -> Option<IpAddr> {
    let addrs: Vec<IpAddr> = match name.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => (name, 0).to_socket_addrs().ok()?.map(|s| s.ip()).collect(),
    };
    let first = |v4: bool| addrs.iter().copied().find(|a| a.is_ipv4() == v4);
    match ip_version {
        "ipv4" => first(true),
        "ipv6" => first(false),
        "ipv4-6" => first(true).or_else(|| first(false)),
        _ => first(false).or_else(|| first(true)),
    }
}

/// This machine's IP addresses, in `getifaddrs` order (none when it fails).
fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|a| {
            let v4 = a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip()));
            v4.or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CorosyncConf, ConfError> {
        CorosyncConf::parse_with(text.as_bytes(), &mut |kind, name| match (kind, name) {
            (Account::User, "nobody") => Some(65534),
            (Account::Group, "nogroup") => Some(65534),
            _ => None,
        })
    }

    fn listing(conf: &CorosyncConf) -> Vec<String> {
        conf.file_keys().map(|(k, v)| format!("{k} = {v:?}")).collect()
    }

    #[test]
    fn sections_nodes_and_types_become_keys() {
        let conf = parse(
            "# c\ntotem {\n  version: 2\n  cluster_name:  a b  \n  config_version: 7\n}\n\
             nodelist {\n node {\n  nodeid: 1\n  ring0_addr: 10.0.0.1\n }\n node {\n  nodeid: 2\n }\n}\n\
             quorum {\n two_node: 1\n provider: corosync_votequorum\n}\n",
        )
        .unwrap();
        assert_eq!(
            listing(&conf),
            [
                "nodelist.node.0.nodeid = UInt32(1)",
                "nodelist.node.0.ring0_addr = String(\"10.0.0.1\")",
                "nodelist.node.1.nodeid = UInt32(2)",
                "quorum.provider = String(\"corosync_votequorum\")",
                "quorum.two_node = UInt8(1)",
                "totem.cluster_name = String(\"a b\")",
                "totem.config_version = UInt64(7)",
                "totem.version = UInt32(2)",
            ]
        );
    }

    #[test]
    fn without_a_local_address_the_lowest_node_is_chosen() {
        let conf = parse(
            "nodelist {\n node {\n  nodeid: 5\n  ring0_addr: a.invalid\n }\n              node {\n  nodeid: 2\n  ring0_addr: b.invalid\n }\n}\n",
        )
        .unwrap();
        assert_eq!((conf.local_address_pos(), conf.local_node_pos()), (None, Some(1)));
    }

    #[test]
    fn votequorum_needs_a_nodelist_or_expected_votes() {
        let quorum = "quorum {\n provider: corosync_votequorum\n}\n";
        let err = parse(&format!(
            "totem {{\n version: 2\n interface {{\n  bindnetaddr: 10.0.0.1\n }}\n}}\n{quorum}"
        ))
        .unwrap()
        .startup_check(None)
        .unwrap_err();
        assert!(err.to_string().contains("nodelist or quorum.expected_votes must be configured"));
        assert_eq!((err.line, err.kind), (0, ConfErrorKind::NoExpectedVotes));
        // Two nodes with one id: refused as corosync does (the breaker's dup.conf: ids 1, 1, 2).
        let dup = b"nodelist {\n node {\n  nodeid: 1\n  ring0_addr: 127.0.0.1\n }\n node {\n  nodeid: 1\n  ring0_addr: 10.0.0.2\n }\n node {\n  nodeid: 2\n  ring0_addr: 10.0.0.3\n }\n}\n";
        let err = CorosyncConf::parse(dup).unwrap_err();
        assert_eq!((err.line, err.kind), (0, ConfErrorKind::DuplicateNodeId(1)));
        assert!(parse("quorum {\n provider: corosync_votequorum\n expected_votes: 3\n}\n").is_ok());
        assert!(parse(&format!("nodelist {{\n node {{\n  nodeid: 1\n }}\n}}\n{quorum}")).is_ok());
        // Without votequorum nothing needs them; a top-level key is stored, as corosync does.
        assert!(parse("foo: bar\ntotem {\n version: 2\n}\n").is_ok());
    }

    #[test]
    fn interfaces_logger_subsys_and_uidgid_are_renamed() {
        let conf = parse(
            "totem {\n interface {\n  knet_link_priority: 2\n  linknumber: 1\n  member {\n   memberaddr: a\n  }\n  \
             member {\n   memberaddr: b\n  }\n  other: x\n }\n}\nlogging {\n logger_subsys {\n  debug: on\n  \
             subsys: QUORUM\n }\n}\nuidgid {\n uid: nobody\n gid: nogroup\n}\n",
        )
        .unwrap();
        let keys: Vec<&str> = conf.file_keys().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "logging.logger_subsys.QUORUM.debug",
                "logging.logger_subsys.QUORUM.subsys",
                "totem.interface.1.knet_link_priority",
                "totem.interface.1.member.0",
                "totem.interface.1.member.1",
                "totem.interface.other",
                "uidgid.config.gid.65534",
                "uidgid.config.uid.65534",
            ]
        );
        // coroparse adds members at the head of its list: the last one is member 0.
        assert_eq!(conf.get_str("totem.interface.1.member.0"), Some("b"));
    }

    #[test]
    fn errors_name_their_line_as_coroparse_does() {
        let err = |text: &str| parse(text).unwrap_err();
        assert_eq!(err("totem {\n a: b\n").to_string(), "line 2: Missing closing brace");
        assert_eq!(err("abc: b\n}\n").kind, ConfErrorKind::UnexpectedClosingBrace);
        assert_eq!(err("\n\nno colon here\n").line, 3);
        assert_eq!(err("{\n").kind, ConfErrorKind::MissingSectionName);
        assert_eq!(err("a { b\n").kind, ConfErrorKind::ExtraAfterOpeningBrace);
        assert_eq!(err("a {\n } x\n").kind, ConfErrorKind::ExtraAroundClosingBrace);
        assert_eq!(
            err("quorum {\n expected_votes: x3\n}\n").to_string(),
            "line 2: Value of key \"quorum.expected_votes\" is expected to be integer \
             in range (0..4294967295), but \"x3\" was given"
        );
        assert_eq!(err("quorum {\n two_node: 256\n}\n").line, 2);
        assert_eq!(
            err("system {\n sched_rr: maybe\n}\n").kind,
            ConfErrorKind::Invalid("Invalid system.sched_rr value")
        );
        assert_eq!(err("logging {\n logger_subsys {\n debug: on\n }\n}\n").kind, ConfErrorKind::NoSubsys);
        assert_eq!(
            err("uidgid {\n uid: nosuchuser\n}\n").kind,
            ConfErrorKind::UnknownUser("nosuchuser".into())
        );
        assert_eq!(err("uidgid {\n who: x\n}\n").kind, ConfErrorKind::UidGidItem);
        assert_eq!(err(&format!("a: {}\n", "x".repeat(600))).kind, ConfErrorKind::LineTooLong);
        assert_eq!(err(&format!("{}: x\n", "k".repeat(300))).kind, ConfErrorKind::KeyPathTooLong);
        assert!(matches!(err("a b: c\n").kind, ConfErrorKind::BadKeyName(_)));
    }

    #[test]
    fn integers_parse_as_strtoll_does() {
        assert_eq!(parse_int(Int::U32, "k", "+7"), Ok(OwnedValue::UInt32(7)));
        assert_eq!(parse_int(Int::I32, "k", "-7"), Ok(OwnedValue::Int32(-7)));
        assert_eq!(parse_int(Int::U64, "k", "18446744073709551615"), Ok(OwnedValue::UInt64(u64::MAX)));
        assert!(parse_int(Int::U32, "k", "-1").is_err());
        assert!(parse_int(Int::U16, "k", "65536").is_err());
        assert!(parse_int(Int::U8, "k", "").is_err());
        assert!(parse_int(Int::U8, "k", "1 2").is_err());
    }

    #[test]
    fn runtime_totem_keys_follow_totemconfig() {
        let conf = parse(
            "totem {\n token: 2000\n token_coefficient: 500\n}\nnodelist {\n node {\n  nodeid: 1\n  ring0_addr: 10.0.0.1\n  \
             ring1_addr: 10.0.1.1\n }\n node {\n  nodeid: 2\n  ring0_addr: 10.0.0.2\n }\n node {\n  nodeid: 3\n  \
             ring0_addr: 10.0.0.3\n }\n}\n",
        )
        .unwrap();
        let keys: BTreeMap<String, OwnedValue> = conf.presented_keys(Some(0)).into_iter().collect();
        let u32_of = |k: &str| match keys.get(k) {
            Some(OwnedValue::UInt32(n)) => *n,
            other => panic!("{k}: {other:?}"),
        };
        // The corosync 3.1.7 daemon's values for this nodelist (cli/tests/corosync_conf/links.conf).
        assert_eq!(u32_of("runtime.config.totem.token"), 2500);
        assert_eq!(u32_of("runtime.config.totem.token_retransmit"), 595);
        assert_eq!(u32_of("runtime.config.totem.hold"), 466);
        assert_eq!(u32_of("runtime.config.totem.consensus"), 3000);
        assert_eq!(u32_of("runtime.config.totem.interface.1.knet_ping_interval"), 625);
        assert_eq!(u32_of("runtime.config.totem.interface.1.knet_ping_timeout"), 1250);
        assert_eq!(u32_of("nodelist.local_node_pos"), 0);
        assert_eq!(keys.get("totem.interface.1.bindnetaddr"), Some(&str_value("10.0.1.1")));
    }

    #[test]
    fn computed_timeouts_convert_as_cs_int_casts_do() {
        assert_eq!(c_int(714.28), 714);
        assert_eq!(c_int(-2.4), u32::MAX - 1);
        // 1.2 * 4294967295 is beyond int: INT_MIN, as corosync 3.1.7 shows for `token: 4294967295`.
        assert_eq!(c_int(f64::from((1.2 * 4_294_967_295.0) as f32)), 2_147_483_648);
        let conf = parse("totem {\n token: 4294967295\n}\n").unwrap();
        let keys: BTreeMap<String, OwnedValue> = conf.presented_keys(None).into_iter().collect();
        assert_eq!(keys.get("runtime.config.totem.consensus"), Some(&OwnedValue::UInt32(2_147_483_648)));
        assert_eq!(
            keys.get("runtime.config.totem.token_retransmit"),
            Some(&OwnedValue::UInt32(1_022_611_260))
        );
    }

    #[test]
    fn the_local_node_is_the_one_with_a_local_address_else_the_lowest_id() {
        let conf = parse(
            "nodelist {\n node {\n  nodeid: 9\n  ring0_addr: 192.0.2.9\n }\n node {\n  nodeid: 4\n  \
             ring0_addr: 192.0.2.4\n }\n}\n",
        )
        .unwrap();
        assert_eq!(conf.local_node_pos(), Some(1));
        assert_eq!(conf.position_of(9), Some(0));
        let conf = parse(
            "nodelist {\n node {\n  nodeid: 9\n  ring0_addr: 192.0.2.9\n }\n node {\n  nodeid: 4\n  \
                          ring0_addr: 127.0.0.1\n }\n}\n",
        )
        .unwrap();
        assert_eq!(conf.local_node_pos(), Some(1));
        assert_eq!(parse("totem {\n}\n").unwrap().local_node_pos(), None);
    }
}
