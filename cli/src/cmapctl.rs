//! `corowire cmap`: a work-alike of corosync 3.1.7's `corosync-cmapctl`.
//!
//! Same options (`-b -q -g -s -d -D -t -T -p FILE -m MAP -C WHAT -h`), same output on stdout
//! and stderr, same exit statuses. Program-name-bearing messages (`getopt` errors) use
//! `corosync-cmapctl` as the name, as the C tool does when run from `$PATH`.
//!
//! Known differences from the C tool:
//! - listing and `-D` read the key names first and then the values (the C tool interleaves
//!   them on one iteration); the output only differs if keys change meanwhile. Listing
//!   pipelines both (`Cmap::dump`). A daemon lost during a listing ends it as the C tool's:
//!   the keys whose values were read (none if it was lost while the names were read), then
//!   one `Can't get value of KEY` line for the next key, and exit status 0; lost before the
//!   first name came, `Failed to initialize iteration` and 1, as the C tool;
//! - tracking quits on end of input also when stdin is a pipe whose writer went away (the C
//!   tool spins on `POLLHUP` there), and stdout is flushed after every event.

use core::time::Duration;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};

use corowire::cmap::{Map, TrackEvent as Event, TrackType, ValueType};
use corowire::dispatch::DispatchMode;
use corowire::value::OwnedValue;
use corowire::CsError;
use corowire_unix::cmap::{Cmap, Options};
use corowire_unix::Error;
use serde_json::{json, Value as Json};

use crate::cformat::{self, cs_strerror};
use crate::getopt::{self, Opt};
use crate::json;
use crate::loadfile::{self, LoadLine};
use crate::out;
use crate::timeout;

const PROG: &str = "corosync-cmapctl";
const MAX_TRY_AGAIN: u32 = 10;
/// `--follow`: how long (ms) tracking (here and in `quorum -m`) waits without the lost
/// connection before it tries again to reach a corosync that is gone.
pub(crate) const DOWN_PAUSE_MS: i32 = 500;

const HELP: &str = r#"
usage:  corosync-cmapctl [-b] [-DdghsqTCt] [-p filename] [-m map] [params...]

    -b show binary values

    -m select map to use
          The  default  map is 'icmap' which contains configuration information and some runtime variables used by corosync. 
          A 'stats' map is also available which displays network statistics - in great detail when knet is used as the transport.
Set key:
    corosync-cmapctl -s key_name type value

    where type is one of ([i|u][8|16|32|64] | flt | dbl | str | bin)
    for bin, value is file name (or - for stdin)

    map can be either 'icmap' (the default) which contains corosync
    configuration information, or 'stats' which contains statistics
    about the networking and IPC traffic in some detail.

Clear stats:
    corosync-cmapctl -C [knet|ipc|totem|schedmiss|all]
    The 'stats' map is implied

Load settings from a file:
    corosync-cmapctl -p filename

    the format of the file is:
    [^[^]]<key_name>[ <type> <value>]
    Keys prefixed with single caret ('^') are deleted (see -d).
    Keys (actually prefixes) prefixed with double caret ('^^') are deleted by prefix (see -D).
    <type> and <value> are optional (not checked) in above cases.
    Other keys are set (see -s) so both <type> and <value> are required.

Delete key:
    corosync-cmapctl -d key_name...

Delete multiple keys with prefix:
    corosync-cmapctl -D key_prefix...

Get key:
    corosync-cmapctl [-b] -g key_name...

Quiet mode:
    corosync-cmapctl [-b] -q -g key_name...

Display all keys:
    corosync-cmapctl [-b]

Display keys with prefix key_name:
    corosync-cmapctl [-b] key_name...

Track changes on keys with key_name:
    corosync-cmapctl [-b] -t key_name

Track changes on keys with key prefix:
    corosync-cmapctl [-b] -T key_prefix

"#;

/// What the command line asks for (`enum user_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Get,
    Set,
    Delete,
    DeletePrefix,
    PrintPrefix,
    Track,
    Load,
    ClearStats,
}

/// Leaves the command with this exit status (the C tool's `exit()`/`return` from `main`).
#[derive(Debug)]
struct Exit(u8);

type Res<T = ()> = Result<T, Exit>;

/// Runs `corowire cmap ARGS…`; returns the exit status.
pub(crate) fn run(mut args: Vec<OsString>) -> u8 {
    let json = crate::take_json_flag(&mut args);
    let follow = crate::take_flag(&mut args, "--follow");
    match main(args, json, follow) {
        Ok(()) => 0,
        Err(Exit(code)) => code,
    }
}

fn type_by_name(name: &[u8]) -> Option<ValueType> {
    ValueType::ALL.into_iter().find(|t| t.cmapctl_name().as_bytes() == name)
}

fn main(args: Vec<OsString>, json: bool, follow: bool) -> Res {
    let parsed = getopt::parse(PROG, "m:hqgsdDtTbp:C:", &args);
    let mut action = Action::PrintPrefix;
    let mut track_prefix = true;
    let mut show_binary = false;
    let mut quiet = false;
    let mut map = Map::Default;
    let mut settings_file = None;
    let mut clear_opt = None;
    for opt in parsed.opts {
        let Opt::Flag(c, arg) = opt else { return Err(Exit(1)) };
        let arg = arg.unwrap_or_default();
        match c {
            'h' => {
                out::print(HELP);
                return Ok(());
            }
            'b' => show_binary = true,
            'q' => quiet = true,
            'g' => action = Action::Get,
            's' => action = Action::Set,
            'd' => action = Action::Delete,
            'D' => action = Action::DeletePrefix,
            'p' => {
                settings_file = Some(arg);
                action = Action::Load;
            }
            'C' => {
                if [&b"knet"[..], b"totem", b"ipc", b"schedmiss", b"all"].contains(&arg.as_bytes()) {
                    action = Action::ClearStats;
                    clear_opt = Some(arg);
                    map = Map::Stats;
                } else {
                    out::eprint("argument to -C should be 'knet', 'totem', 'ipc', 'schedmiss' or 'all'\n");
                    return Err(Exit(1));
                }
            }
            't' => {
                action = Action::Track;
                track_prefix = false;
            }
            'T' => action = Action::Track,
            'm' => match arg.as_bytes() {
                b"icmap" | b"default" => map = Map::Default,
                b"stats" => map = Map::Stats,
                _ => {
                    out::eprint("invalid map name, must be 'default', 'icmap' or 'stats'\n");
                    return Err(Exit(1));
                }
            },
            _ => action = Action::PrintPrefix,
        }
    }
    let operands = parsed.operands;
    if operands.is_empty() && ![Action::Load, Action::ClearStats, Action::PrintPrefix].contains(&action) {
        out::eprint("Expected key after options\n");
        return Err(Exit(1));
    }

    // A value to set may need libcmap's request size (a 70,000-byte bin file must reach the
    // daemon, which judges it, as from the C tool); the other commands set up faster with
    // the default. --follow: only tracking survives a restart.
    let large = matches!(action, Action::Set | Action::Load);
    let cmap = connect(map, large, follow && action == Action::Track)?;
    let mut tool = Tool { cmap, show_binary: show_binary || json, quiet, json, map, keys: Vec::new() };
    let result = match action {
        Action::PrintPrefix => tool.print_prefixes(&operands),
        Action::Get => tool.get(&operands),
        Action::Delete => tool.delete(&operands),
        Action::DeletePrefix => {
            for prefix in &operands {
                tool.delete_with_prefix(&lossy(prefix))?;
            }
            Ok(())
        }
        Action::Load => tool.load(settings_file.as_deref().unwrap_or_default()),
        Action::Track => tool.track(&operands, track_prefix),
        Action::Set => {
            if operands.len() < 3 {
                out::eprint("At least 3 parameters are expected for set\n");
                return Err(Exit(1));
            }
            tool.set_key(&lossy(&operands[0]), operands[1].as_bytes(), operands[2].as_bytes())
        }
        Action::ClearStats => {
            let what = clear_opt.unwrap_or_default();
            let key = format!("stats.clear.{}", what.to_string_lossy());
            let _ = timeout::ok(tool.cmap.set_u32(&key, 1));
            Ok(())
        }
    };
    if json && matches!(action, Action::PrintPrefix | Action::Get) {
        tool.print_json(result.as_ref().err());
    }
    result
}

fn lossy(s: &OsStr) -> String {
    s.to_string_lossy().into_owned()
}

/// The maximum message size libcmap asks for (`IPC_REQUEST_SIZE`, 1 MiB).
const LIBCMAP_MAX_MSG_SIZE: u32 = 1 << 20;

/// `cmap_initialize_map`, retried on `CS_ERR_TRY_AGAIN` like the C tool; `large` asks for
/// libcmap's maximum message size, so that every request the C tool can send fits; `follow`
/// for a connection that waits for corosync and comes back after losing it (`--follow`).
fn connect(map: Map, large: bool, follow: bool) -> Res<Cmap> {
    let mut retries = 0;
    let reconnect = follow.then(crate::follow_reconnect);
    let mut options = Options { map, timeout: timeout::get(), reconnect, ..Options::default() };
    if large {
        options.max_msg_size = options.max_msg_size.max(LIBCMAP_MAX_MSG_SIZE);
    }
    loop {
        match Cmap::connect_with(options.clone()) {
            Ok(c) => return Ok(c),
            Err(e) if timeout::cs(&e) == CsError::TryAgain && retries < MAX_TRY_AGAIN => {
                retries += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => {
                out::eprint(&format!(
                    "Failed to initialize the cmap API. Error {}\n",
                    cs_strerror(timeout::cs(&e))
                ));
                return Err(Exit(1));
            }
        }
    }
}

struct Tool {
    cmap: Cmap,
    show_binary: bool,
    quiet: bool,
    json: bool,
    map: Map,
    /// Keys read, for `--json`.
    keys: Vec<Json>,
}

impl Tool {
    /// Reads `key`, expected to be of type `ty`, as `print_key` does with `value == NULL`:
    /// `Ok(None)` for a binary value that is not to be shown.
    fn fetch(&mut self, key: &str, ty: ValueType) -> Result<Option<OwnedValue>, CsError> {
        if ty == ValueType::Binary && !self.show_binary {
            return Ok(None);
        }
        let mut retries = 0;
        loop {
            match self.cmap.get(key) {
                Ok(v) if v.value_type() == ty => return Ok(Some(v)),
                Ok(_) => return Err(CsError::InvalidParam),
                Err(e) if timeout::cs(&e) == CsError::TryAgain => {
                    std::thread::sleep(Duration::from_secs(1));
                    retries += 1;
                    if retries > MAX_TRY_AGAIN {
                        return Err(CsError::TryAgain);
                    }
                }
                Err(e) => return Err(timeout::cs(&e)),
            }
        }
    }

    /// `print_key` for a key whose value is read from the daemon.
    fn print_fetched(&mut self, key: &str, ty: ValueType) {
        match self.fetch(key, ty) {
            Ok(v) => self.print_key(key.as_bytes(), ty, v.as_ref()),
            Err(e) => Self::value_error(key, e),
        }
    }

    /// The C tool's line for a key whose value could not be read.
    fn value_error(key: &str, e: CsError) {
        out::eprint(&format!("Can't get value of {key}. Error {}\n", cs_strerror(e)));
    }

    /// The line `print_key` prints (or, with `--json`, records the key).
    fn print_key(&mut self, key: &[u8], ty: ValueType, value: Option<&OwnedValue>) {
        if self.json {
            if let Some(v) = value {
                self.keys.push(json::entry(&String::from_utf8_lossy(key), v));
            }
            return;
        }
        out::stdout(&key_line(key, ty, value, self.quiet, self.show_binary));
    }

    /// The keys under `prefix` (all for `None`), as `cmap_iter_*` gives them.
    fn keys_under(&mut self, prefix: Option<&str>) -> Res<Vec<(String, ValueType)>> {
        let iter = match self.cmap.iter(prefix) {
            Ok(i) => i,
            Err(e) => {
                out::eprint(&format!(
                    "Failed to initialize iteration. Error {}\n",
                    cs_strerror(timeout::cs(&e))
                ));
                return Err(Exit(1));
            }
        };
        // The C tool stops silently at the first error of `cmap_iter_next`.
        Ok(iter.map_while(timeout::ok).map(|(k, ty, _)| (k, ty)).collect())
    }

    /// `print_iter`, through the pipelined [`Cmap::dump`]: whether nothing was found.
    ///
    /// A key whose value cannot be read gets the C tool's `Can't get value of KEY. Error E`
    /// line. When the connection is lost while the names or the values are read, the keys
    /// whose values came are printed and the first key without a value gets that line; the
    /// listing ends there, as the C tool's does (its next `cmap_iter_next` fails, silently).
    fn print_iter(&mut self, prefix: Option<&str>) -> Res<bool> {
        let entries = match self.cmap.dump(prefix) {
            Ok(entries) => entries,
            Err(e) => {
                let e = timeout::cs(&e);
                out::eprint(&format!("Failed to initialize iteration. Error {}\n", cs_strerror(e)));
                return Err(Exit(1));
            }
        };
        for (key, value) in &entries {
            match value {
                Ok(v) => {
                    let ty = v.value_type();
                    let shown = (ty != ValueType::Binary || self.show_binary).then_some(v);
                    self.print_key(key.as_bytes(), ty, shown);
                }
                // The C tool retries a GET the daemon asked to retry.
                Err(e) if e.answered() == Some(CsError::TryAgain) => match self.cmap.get_type(key) {
                    Ok((ty, _)) => self.print_fetched(key, ty),
                    Err(e) => Self::value_error(key, timeout::cs(&e)),
                },
                Err(e) => {
                    Self::value_error(key, timeout::cs(e));
                    if e.answered().is_none() {
                        break;
                    }
                }
            }
        }
        Ok(entries.is_empty())
    }

    fn print_prefixes(&mut self, prefixes: &[OsString]) -> Res {
        let mut no_result = 0;
        if prefixes.is_empty() {
            no_result = usize::from(self.print_iter(None)?);
        } else {
            for p in prefixes {
                no_result += usize::from(self.print_iter(Some(&lossy(p)))?);
            }
        }
        if no_result > 0 && no_result >= prefixes.len() {
            return Err(Exit(1));
        }
        Ok(())
    }

    fn get(&mut self, keys: &[OsString]) -> Res {
        for key in keys {
            let key = lossy(key);
            match self.cmap.get_type(&key) {
                Ok((ty, _)) => self.print_fetched(&key, ty),
                Err(e) => {
                    let e = timeout::cs(&e);
                    out::eprint(&format!("Can't get key {key}. Error {}\n", cs_strerror(e)));
                    if self.json {
                        self.keys.push(json!({"error": {"key": key, "error": cs_strerror(e)}}));
                    }
                    return Err(Exit(1));
                }
            }
        }
        Ok(())
    }

    /// With `--json`: the document for a listing or `-g`.
    fn print_json(&mut self, failed: Option<&Exit>) {
        let mut error = Json::Null;
        let mut keys = Vec::new();
        for k in self.keys.drain(..) {
            match k.get("error") {
                Some(e) => error = e.clone(),
                None => keys.push(k),
            }
        }
        let map = if self.map == Map::Stats { "stats" } else { "icmap" };
        let mut doc = json!({"map": map, "keys": keys});
        if failed.is_some() && !error.is_null() {
            doc["error"] = error;
        }
        json::print_line(&doc);
    }

    fn delete(&mut self, keys: &[OsString]) -> Res {
        for key in keys {
            let key = lossy(key);
            if let Err(e) = self.cmap.delete(&key) {
                out::eprint(&format!("Can't delete key {key}. Error {}\n", cs_strerror(timeout::cs(&e))));
                return Err(Exit(1));
            }
        }
        Ok(())
    }

    fn delete_with_prefix(&mut self, prefix: &str) -> Res {
        for (key, _) in self.keys_under(Some(prefix))? {
            if let Err(e) = self.cmap.delete(&key) {
                out::eprint(&format!("Can't delete key {key}. Error {}\n", cs_strerror(timeout::cs(&e))));
            }
        }
        Ok(())
    }

    /// `set_key`: parses `value` as `type_name` and sets it; every failure ends the program.
    fn set_key(&mut self, key: &str, type_name: &[u8], value: &[u8]) -> Res {
        let Some(ty) = type_by_name(type_name) else {
            out::stderr(&[b"Unknown type ", type_name, b"\n"].concat());
            return Err(Exit(1));
        };
        let invalid = |what: &[u8]| {
            out::stderr(&[value, what, b"\n"].concat());
            Exit(1)
        };
        let not_valid_type = || invalid(&[b" is not valid ", type_name, b" type value"].concat());
        let v = match ty {
            ValueType::Int8 | ValueType::Int16 | ValueType::Int32 | ValueType::Int64 => {
                let x = cformat::scan_i64(value).ok_or_else(not_valid_type)?;
                let range_error =
                    || invalid(format!(" is not valid {} integer", ty.cmapctl_name()).as_bytes());
                match ty {
                    ValueType::Int8 => OwnedValue::Int8(i8::try_from(x).map_err(|_| range_error())?),
                    ValueType::Int16 => OwnedValue::Int16(i16::try_from(x).map_err(|_| range_error())?),
                    ValueType::Int32 => OwnedValue::Int32(i32::try_from(x).map_err(|_| range_error())?),
                    _ => OwnedValue::Int64(x),
                }
            }
            ValueType::UInt8 | ValueType::UInt16 | ValueType::UInt32 | ValueType::UInt64 => {
                let x = cformat::scan_u64(value).ok_or_else(not_valid_type)?;
                let range_error =
                    || invalid(format!(" is not valid {} integer", ty.cmapctl_name()).as_bytes());
                match ty {
                    ValueType::UInt8 => OwnedValue::UInt8(u8::try_from(x).map_err(|_| range_error())?),
                    ValueType::UInt16 => OwnedValue::UInt16(u16::try_from(x).map_err(|_| range_error())?),
                    ValueType::UInt32 => OwnedValue::UInt32(u32::try_from(x).map_err(|_| range_error())?),
                    _ => OwnedValue::UInt64(x),
                }
            }
            ValueType::Float => OwnedValue::Float(cformat::scan_f32(value).ok_or_else(not_valid_type)?),
            ValueType::Double => OwnedValue::Double(cformat::scan_f64(value).ok_or_else(not_valid_type)?),
            ValueType::String => OwnedValue::String(value.to_vec()),
            ValueType::Binary => OwnedValue::Binary(read_bin(value)?),
        };
        let result = match &v {
            // cmap_set refuses a NULL value, which is what an empty input gives.
            OwnedValue::Binary(b) if b.is_empty() => Err(CsError::InvalidParam),
            _ => self.cmap.set(key, v.as_value()).map_err(|e| timeout::cs(&e)),
        };
        if let Err(e) = result {
            out::eprint(&format!("Failed to set key {key}. Error {}\n", cs_strerror(e)));
            return Err(Exit(1));
        }
        Ok(())
    }

    /// `read_in_config_file`: `[^[^]]key[ type value]` lines, read as `fgets` into 1024 bytes.
    fn load(&mut self, filename: &OsStr) -> Res {
        let mut file = match std::fs::File::open(filename) {
            Ok(f) => f,
            Err(e) => {
                out::eprint(&format!("Couldn't open file.: {}\n", cformat::strerror(&e)));
                return Ok(());
            }
        };
        let mut data = Vec::new();
        // A read error ends the input, as `fgets` returning NULL does.
        let _ = file.read_to_end(&mut data);
        for line in loadfile::lines(&data) {
            match line {
                LoadLine::Comment => {}
                LoadLine::DeletePrefix(prefix) => {
                    self.delete_with_prefix(&String::from_utf8_lossy(prefix))?
                }
                LoadLine::Delete(k) => {
                    let k = String::from_utf8_lossy(k).into_owned();
                    if let Err(e) = self.cmap.delete(&k) {
                        out::eprint(&format!(
                            "Can't delete key {k}. Error {}\n",
                            cs_strerror(timeout::cs(&e))
                        ));
                    }
                }
                LoadLine::Incomplete(key) => {
                    let name = key.map_or("(null)".into(), String::from_utf8_lossy);
                    out::eprint(&format!("Both type and value for key {name} are required\n"));
                    return Err(Exit(1));
                }
                LoadLine::Set { key, ty, value } => {
                    let key = String::from_utf8_lossy(key).into_owned();
                    self.set_key(&key, ty, value)?;
                }
            }
        }
        Ok(())
    }

    /// `add_track` for every key, then `track_changes`.
    fn track(&mut self, keys: &[OsString], prefix: bool) -> Res {
        let events: Arc<Mutex<Vec<TrackedEvent>>> = Arc::default();
        let mut track_type = TrackType(TrackType::ADD.0 | TrackType::DELETE.0 | TrackType::MODIFY.0);
        if prefix {
            track_type = TrackType(track_type.0 | TrackType::PREFIX.0);
        }
        for key in keys {
            let sink = Arc::clone(&events);
            let added = self.cmap.track_add(Some(&lossy(key)), track_type, move |e| {
                let ev = TrackedEvent {
                    event: e.event,
                    key: e.key_bytes.to_vec(),
                    new: e.new_value.map(OwnedValue::from),
                    old: e.old_value.map(OwnedValue::from),
                };
                if let Ok(mut q) = sink.lock() {
                    q.push(ev);
                }
            });
            if let Err(e) = added {
                out::eprint(&format!(
                    "Failed to add tracking function. Error {}\n",
                    cs_strerror(timeout::cs(&e))
                ));
                return Err(Exit(1));
            }
        }
        if !self.json {
            out::print("Type \"q\" to finish\n");
            out::flush();
        }
        let stdin = std::io::stdin();
        let mut stdin = stdin.lock();
        // --follow: corosync is gone and did not answer the last try; meanwhile only stdin
        // is watched (the lost connection's fd stays readable), and after a pause a dispatch
        // tries again.
        let mut down = false;
        loop {
            let polled = if down { poll2(-1, 0, DOWN_PAUSE_MS) } else { poll2(self.cmap.as_raw_fd(), 0, -1) };
            let (cmap_ready, stdin_ready) = match polled {
                Ok((cmap_ready, stdin_ready)) => (cmap_ready || (down && !stdin_ready), stdin_ready),
                Err(e) => {
                    out::eprint(&format!("poll: {}\n", cformat::strerror(&e)));
                    break;
                }
            };
            let mut quit = false;
            if stdin_ready {
                match fgets3(&mut stdin) {
                    None => quit = true,
                    Some(line) if line.first() == Some(&b'q') => quit = true,
                    Some(_) => {}
                }
            }
            if cmap_ready {
                let r = self.cmap.dispatch(DispatchMode::All);
                let was_down = core::mem::replace(&mut down, matches!(r, Err(Error::Connect { .. })));
                match r {
                    // --follow: back after a loss, the tracks re-added.
                    Err(Error::Resync) => crate::print_resync("resync> ", self.json),
                    // --follow: corosync is not back yet.
                    Err(Error::Connect { .. }) => {
                        if !was_down {
                            crate::print_lost();
                        }
                    }
                    Err(e) => {
                        out::eprint(&format!("Dispatch error {}\n", cs_strerror(timeout::cs(&e))));
                        quit = true;
                    }
                    Ok(()) => {}
                }
                let pending: Vec<TrackedEvent> =
                    events.lock().map(|mut q| q.drain(..).collect()).unwrap_or_default();
                for ev in pending {
                    self.print_event(&ev);
                }
                out::flush();
            }
            if quit {
                break;
            }
        }
        Ok(())
    }

    /// `cmap_notify_fn`.
    fn print_event(&mut self, ev: &TrackedEvent) {
        if self.json {
            let mut doc = json!({"event": match ev.event {
                Event::Add => "create",
                Event::Modify => "modify",
                Event::Delete => "delete",
            }, "key": String::from_utf8_lossy(&ev.key)});
            if let Some(v) = &ev.new {
                doc["type"] = v.value_type().cmapctl_name().into();
                doc["value"] = json::value(v);
            }
            if let Some(v) = &ev.old {
                doc["old_type"] = v.value_type().cmapctl_name().into();
                doc["old_value"] = json::value(v);
            }
            json::print_line(&doc);
            return;
        }
        let (label, value) = match ev.event {
            Event::Add => ("create> ", &ev.new),
            Event::Delete => ("delete> ", &ev.old),
            Event::Modify => ("modify> ", &ev.new),
        };
        out::print(label);
        if let Some(v) = value {
            // A notified value is printed as is; a binary one is shown only with -b.
            let ty = v.value_type();
            let shown = (ty != ValueType::Binary || self.show_binary).then_some(v);
            out::stdout(&key_line(&ev.key, ty, shown, self.quiet, self.show_binary));
        }
    }
}

/// A change, copied out of the track callback.
#[derive(Debug)]
struct TrackedEvent {
    event: Event,
    key: Vec<u8>,
    new: Option<OwnedValue>,
    old: Option<OwnedValue>,
}

/// `set_key_bin`'s input: the file `name`, or stdin for `-`.
fn read_bin(name: &[u8]) -> Res<Vec<u8>> {
    let mut data = Vec::new();
    if name == b"-" {
        let _ = std::io::stdin().lock().read_to_end(&mut data);
        return Ok(data);
    }
    match std::fs::File::open(OsStr::from_bytes(name)) {
        Ok(mut f) => {
            let _ = f.read_to_end(&mut data);
            Ok(data)
        }
        Err(e) => {
            out::eprint(&format!("Can't open input file: {}\n", cformat::strerror(&e)));
            Err(Exit(1))
        }
    }
}

/// The line `print_key` prints for `key`; `value` is `None` for a binary value not shown.
pub(crate) fn key_line(
    key: &[u8],
    ty: ValueType,
    value: Option<&OwnedValue>,
    quiet: bool,
    show_binary: bool,
) -> Vec<u8> {
    let mut line = Vec::new();
    if !quiet {
        line.extend_from_slice(key);
        line.extend_from_slice(b" (");
    }
    if ty == ValueType::Binary {
        // The C tool prints the type even in quiet mode here.
        line.extend_from_slice(b"bin)");
        if show_binary {
            line.extend_from_slice(b" = ");
            match value {
                Some(OwnedValue::Binary(b)) => cformat::escape_binary(b, &mut line),
                _ => line.extend_from_slice(b"*empty*"),
            }
        }
    } else {
        if !quiet {
            line.extend_from_slice(ty.cmapctl_name().as_bytes());
            line.extend_from_slice(b") = ");
        }
        // Strings go out as their raw bytes, as the C tool's `%s`; numbers as `Display` prints
        // them (`%d`, `%u`, `%f`).
        match value {
            Some(OwnedValue::String(b) | OwnedValue::Binary(b)) => line.extend_from_slice(cformat::c_str(b)),
            Some(v) => line.extend_from_slice(v.to_string().as_bytes()),
            None => {}
        }
    }
    line.push(b'\n');
    line
}

/// `fgets(inbuf, 3, stdin)` on the (buffered) standard input: up to two bytes, stopping after
/// a newline; `None` at end of input.
fn fgets3(stdin: &mut std::io::StdinLock<'_>) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    while got.len() < 2 && got.last() != Some(&b'\n') {
        let buf = match stdin.fill_buf() {
            Ok(b) if !b.is_empty() => b,
            _ => break,
        };
        let mut n = 0;
        while n < buf.len() && got.len() < 2 && got.last() != Some(&b'\n') {
            got.push(buf[n]);
            n += 1;
        }
        stdin.consume(n);
    }
    (!got.is_empty()).then_some(got)
}

/// Waits until `a` or `b` is readable, hung up or in error, at most `timeout_ms`
/// milliseconds (`-1`: forever; neither ready then). A negative fd is not watched.
pub(crate) fn poll2(a: i32, b: i32, timeout_ms: i32) -> std::io::Result<(bool, bool)> {
    let mut fds = [
        libc::pollfd { fd: a, events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: b, events: libc::POLLIN, revents: 0 },
    ];
    // SAFETY: `fds` is a live array of two `pollfd`s, and its length is passed with it.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let ready = |p: &libc::pollfd| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
    Ok((ready(&fds[0]), ready(&fds[1])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_like_the_c_tool() {
        let s = OwnedValue::String(b"corowire-test".to_vec());
        assert_eq!(
            key_line(b"totem.cluster_name", ValueType::String, Some(&s), false, false),
            b"totem.cluster_name (str) = corowire-test\n"
        );
        assert_eq!(key_line(b"k.b", ValueType::Binary, None, false, false), b"k.b (bin)\n");
        assert_eq!(key_line(b"k.b", ValueType::Binary, None, true, false), b"bin)\n");
        let f = OwnedValue::Float(1.5);
        assert_eq!(key_line(b"k.f", ValueType::Float, Some(&f), true, false), b"1.500000\n");
    }
}
