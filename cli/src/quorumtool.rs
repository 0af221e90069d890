//! `corowire quorum`: a work-alike of corosync 3.1.7's `corosync-quorumtool`.
//!
//! Same options (`-s -m -l -a -p -v N -n ID -e N -H -i -o a|n|i -f -h -V`), same output and
//! exit statuses (0, 1, and 2 for "not quorate" with `-s`). Program-name-bearing output uses
//! `corosync-quorumtool`.
//!
//! The C tool talks to four services (cmap, quorum, cfg, votequorum); this one only to cmap
//! and votequorum, so:
//! - the membership, ring id and quorate state come from votequorum's node-list and quorum
//!   notifications (corosync sends them together with the quorum service's), and `-m` replays
//!   the C tool's two-queue wait on that single stream, so it prints at the same moments;
//! - node names come from the CMAP node list (`nodelist.node.X.name`, as in the C tool); the
//!   addresses the C tool asks the cfg service for are taken from `nodelist.node.X.ringN_addr`
//!   (resolved to an IP address, then shown as it with `-i`, else as the name `getnameinfo`
//!   gives for it, as the C tool does: `localhost` for 127.0.0.1, nothing when the lookup
//!   fails);
//! - against a corosync without the votequorum provider, `-s`, `-l`, `-e`, `-v` and `-f`
//!   print the C tool's messages and exit with its statuses (`-m` too).

use std::ffi::OsString;
use std::net::ToSocketAddrs;

use corowire::dispatch::DispatchMode;
use corowire::votequorum::{InfoFlags, Notification, TrackFlags, QDEVICE_NODEID};
use corowire::CsError;
use corowire_unix::cmap::Cmap;
use corowire_unix::sys::dns::name_of;
use corowire_unix::votequorum::{NodeInfo, Votequorum};
use corowire_unix::{Error, Options};
use serde_json::{json, Value as Json};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use crate::cformat::{cs_strerror, strtonum};
use crate::getopt::{self, Opt};
use crate::out;
use crate::timeout;

const PROG: &str = "corosync-quorumtool";
/// The corosync version whose tool this mirrors (`-V`).
const COROSYNC_VERSION: &str = "3.1.7";
const EXIT_NOT_QUORATE: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    ShowNodes,
    ShowStatus,
    SetVotes,
    SetExpected,
    Monitor,
    UnregisterQdevice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    Addr,
    NodeId,
    Name,
}

/// Display options.
#[derive(Debug, Clone, Copy)]
struct Format {
    hex: bool,
    ip: bool,
    sort: Sort,
    all_addrs: bool,
    machine_parsable: bool,
    json: bool,
}

const USAGE_OPTIONS: &str = r"
  options:

  -s             show quorum status
  -m             constantly monitor quorum status
  -l             list nodes
  -a             show all names or addresses for each node
  -p             when used with -s or -l, generates machine parsable output
  -v <votes>     change the number of votes for a node (*)
  -n <nodeid>    optional nodeid of node for -v
  -e <expected>  change expected votes for the cluster (*)
  -H             show nodeids in hexadecimal rather than decimal
  -i             show node IP addresses instead of the resolved name
  -o <a|n|i>     order by [a] IP address (default), [n] name, [i] nodeid
  -f             forcefully unregister a quorum device *DANGEROUS* (*)
  -h             show this help text
  -V             show version and exit

  (*) Starred items only work if votequorum is the quorum provider for corosync

";

fn usage() {
    out::print(&format!("usage: \n{PROG} <options>\n{USAGE_OPTIONS}"));
}

/// Runs `corowire quorum ARGS…`; returns the exit status.
pub(crate) fn run(mut args: Vec<OsString>) -> u8 {
    let json = crate::take_json_flag(&mut args);
    let follow = crate::take_flag(&mut args, "--follow");
    let parsed = getopt::parse(PROG, "VHaslpmfe:v:hin:o:", &args);
    let mut command = Command::ShowStatus;
    let mut fmt =
        Format { hex: false, ip: false, sort: Sort::Addr, all_addrs: false, machine_parsable: false, json };
    let mut votes = 0i64;
    let mut nodeid = None;
    for opt in parsed.opts {
        let Opt::Flag(c, arg) = opt else {
            usage();
            return 1;
        };
        let arg = arg.unwrap_or_default();
        let arg = arg.as_encoded_bytes();
        match c {
            'f' => command = Command::UnregisterQdevice,
            's' => command = Command::ShowStatus,
            'a' => fmt.all_addrs = true,
            'm' => command = Command::Monitor,
            'i' => fmt.ip = true,
            'H' => fmt.hex = true,
            'l' => command = Command::ShowNodes,
            'p' => fmt.machine_parsable = true,
            'e' => {
                let Some(v) = strtonum(arg, 1, i64::from(i32::MAX)) else {
                    out::eprint("New expected votes value was not valid, try a positive number\n");
                    return 1;
                };
                votes = v;
                command = Command::SetExpected;
            }
            'n' => {
                let Some(v) = strtonum(arg, 1, i64::from(u32::MAX)) else {
                    out::eprint("The nodeid was not valid, try a positive number\n");
                    return 1;
                };
                nodeid = Some(v as u32);
            }
            'v' => {
                let Some(v) = strtonum(arg, 0, i64::from(i32::MAX)) else {
                    out::eprint("New votes value was not valid, try a positive number or zero\n");
                    return 1;
                };
                votes = v;
                command = Command::SetVotes;
            }
            'o' => {
                fmt.sort = match arg {
                    b"a" => Sort::Addr,
                    b"i" => Sort::NodeId,
                    b"n" => Sort::Name,
                    _ => {
                        out::eprint(
                            "Invalid ordering option. valid orders are a(address), i(node ID) or n(name)\n",
                        );
                        return 1;
                    }
                }
            }
            'V' => {
                out::print(&format!("{PROG} version: {COROSYNC_VERSION}\n"));
                return 0;
            }
            'h' => {
                usage();
                return 0;
            }
            _ => {
                usage();
                return 1;
            }
        }
    }

    // --follow: only monitoring survives a restart.
    let mut tool = match Tool::init(follow && command == Command::Monitor) {
        Init::Ready(tool) => tool,
        Init::Failed => return 1,
        Init::NoVotequorum => return without_votequorum(command, fmt),
    };
    match command {
        Command::ShowNodes => tool.show_nodes(fmt),
        Command::ShowStatus => tool.show_status(fmt),
        Command::SetVotes => {
            let nodeid = nodeid.unwrap_or(tool.our_nodeid);
            match tool.vq.set_votes(nodeid, votes as u32) {
                Ok(()) => 0,
                Err(e) => {
                    out::eprint(&format!(
                        "Unable to set votes {votes} for nodeid: {nodeid}: {}\n",
                        cs_strerror(timeout::cs(&e))
                    ));
                    1
                }
            }
        }
        Command::SetExpected => match tool.vq.set_expected(votes as u32) {
            Ok(()) => 0,
            Err(e) => {
                out::eprint(&format!("Unable to set expected votes: {}\n", cs_strerror(timeout::cs(&e))));
                1
            }
        },
        Command::Monitor => tool.monitor(fmt),
        Command::UnregisterQdevice => tool.unregister_qdevice(),
    }
}

/// What [`Tool::init`] found.
enum Init {
    Ready(Box<Tool>),
    /// corosync runs without `quorum { provider: corosync_votequorum }`.
    NoVotequorum,
    /// A message was printed.
    Failed,
}

/// `command` against a corosync that does not use votequorum, as the C tool answers it:
/// the changes are refused, `-s` cannot start tracking (its votequorum handle is not
/// valid; `-m` then says it cannot monitor), `-l` prints the membership header without a
/// votes column and no member.
fn without_votequorum(command: Command, fmt: Format) -> u8 {
    let refused = |what: &str| {
        out::eprint(&format!("You cannot {what}, corosync is not using votequorum\n"));
        1
    };
    match command {
        Command::SetExpected => refused("change expected votes"),
        Command::SetVotes => refused("change node votes"),
        Command::UnregisterQdevice => refused("unregister quorum device"),
        Command::ShowStatus | Command::Monitor => {
            out::eprint("Unable to start votequorum status tracking: CS_ERR_BAD_HANDLE\n");
            if command == Command::Monitor {
                out::print("\nQuorum is not configured - cannot monitor\n");
            }
            1
        }
        Command::ShowNodes if fmt.json => {
            crate::json::print_line(&json!({"membership": [], "qdevice": Json::Null}));
            0
        }
        Command::ShowNodes => {
            out::print(&format!(
                "\nMembership information\n----------------------\n{}Name\n",
                padded("Nodeid")
            ));
            0
        }
    }
}

/// A notification copied out of the votequorum callback.
#[derive(Debug, Clone)]
enum Note {
    Quorum {
        quorate: bool,
    },
    NodeList {
        rep_node: u32,
        seq: u64,
        members: Vec<u32>,
    },
    Other,
    /// `--follow`: the connection came back after a loss, tracking started again.
    Resync,
}

/// The state the C tool keeps in globals.
struct Tool {
    cmap: Cmap,
    vq: Votequorum,
    notes: Arc<Mutex<Vec<Note>>>,
    our_nodeid: u32,
    /// The quorum service's view: members, ring sequence, quorate.
    view: Vec<u32>,
    ring_seq: u64,
    quorate: bool,
    /// From the last votequorum node-list notification.
    ring_rep_node: u32,
    /// The nodes of the CMAP node list, for names and addresses.
    nodelist: Option<Vec<NodelistEntry>>,
    /// `--follow`: the connections come back after a loss.
    follow: bool,
    /// `--follow`: corosync is gone and did not answer the last try.
    down: bool,
}

/// One `nodelist.node.X.` entry.
#[derive(Debug, Clone, Default)]
struct NodelistEntry {
    nodeid: Option<u32>,
    name: Option<String>,
    addrs: Vec<String>,
}

impl Tool {
    /// `init_all`: the connections, or what stopped them (after printing the C tool's
    /// message). `follow`: connections that wait for corosync and come back after losing it
    /// (`--follow`).
    fn init(follow: bool) -> Init {
        let reconnect = follow.then(crate::follow_reconnect);
        let options = Options { timeout: timeout::get(), reconnect, ..Options::default() };
        let Some(mut cmap) = timeout::ok(Cmap::connect_with(options.clone())) else {
            out::eprint("Cannot initialize CMAP service\n");
            return Init::Failed;
        };
        if timeout::ok(cmap.get_string("quorum.provider")).as_deref() != Some("corosync_votequorum") {
            return Init::NoVotequorum;
        }
        let Some(mut vq) = timeout::ok(Votequorum::connect_with(options)) else {
            out::eprint("Cannot initialise VOTEQUORUM service\n");
            return Init::Failed;
        };
        let Some(our_nodeid) = timeout::ok(cmap.get_u32("runtime.votequorum.this_node_id")) else {
            out::eprint("Unable to retrieve this_node_id\n");
            return Init::Failed;
        };
        let notes: Arc<Mutex<Vec<Note>>> = Arc::default();
        let sink = Arc::clone(&notes);
        vq.set_callback(move |n| {
            let note = match n {
                Notification::Quorum { quorate, .. } => Note::Quorum { quorate: *quorate },
                Notification::NodeList { ring_id, nodes, .. } => Note::NodeList {
                    rep_node: ring_id.nodeid,
                    seq: ring_id.seq,
                    members: nodes.iter().collect(),
                },
                Notification::ExpectedVotes { .. } => Note::Other,
            };
            if let Ok(mut q) = sink.lock() {
                q.push(note);
            }
        });
        Init::Ready(Box::new(Self {
            cmap,
            vq,
            notes,
            our_nodeid,
            view: Vec::new(),
            ring_seq: 0,
            quorate: false,
            ring_rep_node: 0,
            nodelist: None,
            follow,
            down: false,
        }))
    }

    /// Waits for the next notification.
    fn next_note(&mut self) -> Result<Note, CsError> {
        loop {
            if let Some(n) = self.notes.lock().ok().and_then(|mut q| (!q.is_empty()).then(|| q.remove(0))) {
                return Ok(n);
            }
            if self.follow {
                if let Some(n) = self.follow_once()? {
                    return Ok(n);
                }
                continue;
            }
            self.vq.dispatch(DispatchMode::One).map_err(|e| timeout::cs(&e))?;
        }
    }

    /// `--follow`: waits until the votequorum or the CMAP connection is readable (while
    /// corosync is down: a pause), then dispatches both without waiting, so that the idle
    /// CMAP connection notices a loss (and removes its files) with the votequorum one, and
    /// both come back when corosync does. The resync, if that dispatch reported one.
    fn follow_once(&mut self) -> Result<Option<Note>, CsError> {
        let polled = if self.down {
            crate::cmapctl::poll2(-1, -1, crate::cmapctl::DOWN_PAUSE_MS)
        } else {
            crate::cmapctl::poll2(self.vq.as_raw_fd(), self.cmap.as_raw_fd(), -1)
        };
        polled.map_err(|_| CsError::Library)?;
        // It tracks nothing: this only notices a loss, or reconnects (its resync is moot).
        let _ = self.cmap.dispatch(DispatchMode::All);
        let r = self.vq.dispatch(DispatchMode::All);
        let was_down = core::mem::replace(&mut self.down, matches!(r, Err(Error::Connect { .. })));
        match r {
            Err(Error::Resync) => Ok(Some(Note::Resync)),
            Err(Error::Connect { .. }) => {
                if !was_down {
                    crate::print_lost();
                }
                Ok(None)
            }
            r => r.map(|()| None).map_err(|e| timeout::cs(&e)),
        }
    }

    /// The current state, as `quorum_getquorate` + `quorum_trackstart(CS_TRACK_CURRENT)` and
    /// `votequorum_trackstart(CS_TRACK_CURRENT)` give it to the C tool.
    fn current(&mut self) -> Result<(), CsError> {
        self.vq.track_start(0, TrackFlags::CURRENT).map_err(|e| timeout::cs(&e))?;
        let (mut got_list, mut got_quorum) = (false, false);
        while !(got_list && got_quorum) {
            match self.next_note()? {
                Note::Quorum { quorate } => {
                    self.quorate = quorate;
                    got_quorum = true;
                }
                Note::NodeList { rep_node, seq, members } => {
                    self.ring_rep_node = rep_node;
                    self.ring_seq = seq;
                    self.view = members;
                    got_list = true;
                }
                Note::Other | Note::Resync => {}
            }
        }
        Ok(())
    }

    fn show_status(&mut self, fmt: Format) -> u8 {
        if let Err(e) = self.current() {
            out::eprint(&format!("Unable to get cluster quorate status: {}\n", cs_strerror(e)));
            return 1;
        }
        let quorate = self.quorate;
        match self.display_quorum_data(quorate, fmt) {
            Ok(()) if quorate => 0,
            Ok(()) => EXIT_NOT_QUORATE,
            Err(_) => 1,
        }
    }

    fn show_nodes(&mut self, fmt: Format) -> u8 {
        if let Err(e) = self.current() {
            out::eprint(&format!("Unable to start quorum status tracking: {}\n", cs_strerror(e)));
            return 1;
        }
        let doc = self.display_nodes_data(fmt);
        if fmt.json {
            crate::json::print_line(&doc);
        }
        0
    }

    /// `monitor_status`: the C tool waits for a quorum-service notification, then for a
    /// votequorum node-list notification, and prints. Corosync sends a quorum-service
    /// notification exactly when it sends a votequorum quorum notification, so both queues
    /// are replayed from the one votequorum stream.
    fn monitor(&mut self, fmt: Format) -> u8 {
        if let Err(e) = self.vq.track_start(0, TrackFlags::CHANGES) {
            out::eprint(&format!(
                "Unable to start votequorum status tracking: {}\n",
                cs_strerror(timeout::cs(&e))
            ));
            return 1;
        }
        let mut log: Vec<Note> = Vec::new();
        // The quorum queue's cursor and the votequorum queue's cursor into `log`.
        let (mut q_pos, mut vq_pos) = (0usize, 0usize);
        'monitor: loop {
            // quorum_dispatch(ONE): the next quorum notification, with the membership of the
            // node list that came before it.
            let quorum_at = loop {
                if let Some(i) = log[q_pos..].iter().position(|n| matches!(n, Note::Quorum { .. })) {
                    break q_pos + i;
                }
                match self.next_note() {
                    Ok(Note::Resync) => {
                        crate::print_resync("Resync: ", fmt.json);
                        (log, q_pos, vq_pos) = (Vec::new(), 0, 0);
                        continue 'monitor;
                    }
                    Ok(n) => log.push(n),
                    Err(e) => {
                        out::eprint(&format!("Unable to dispatch quorum status: {}\n", cs_strerror(e)));
                        return 1;
                    }
                }
            };
            q_pos = quorum_at + 1;
            if let Note::Quorum { quorate } = log[quorum_at] {
                self.quorate = quorate;
            }
            if let Some(Note::NodeList { seq, members, .. }) =
                log[..quorum_at].iter().rev().find(|n| matches!(n, Note::NodeList { .. }))
            {
                self.ring_seq = *seq;
                self.view.clone_from(members);
            }
            // votequorum_dispatch(ONE) until a node-list notification.
            loop {
                while vq_pos >= log.len() {
                    match self.next_note() {
                        Ok(Note::Resync) => {
                            crate::print_resync("Resync: ", fmt.json);
                            (log, q_pos, vq_pos) = (Vec::new(), 0, 0);
                            continue 'monitor;
                        }
                        Ok(n) => log.push(n),
                        Err(e) => {
                            out::eprint(&format!(
                                "Unable to dispatch votequorum status: {}\n",
                                cs_strerror(e)
                            ));
                            return 1;
                        }
                    }
                }
                vq_pos += 1;
                if let Note::NodeList { rep_node, .. } = log[vq_pos - 1] {
                    self.ring_rep_node = rep_node;
                    break;
                }
            }
            let quorate = self.quorate;
            let result = self.display_quorum_data(quorate, fmt);
            if !fmt.json {
                out::print("\n");
            }
            out::flush();
            if let Err(e) = result {
                out::eprint(&format!("Unable to display quorum data: {}\n", cs_strerror(e)));
                return 1;
            }
        }
    }

    fn unregister_qdevice(&mut self) -> u8 {
        let info = match self.vq.get_info(self.our_nodeid) {
            Ok(i) => i,
            Err(e) => {
                out::eprint(&format!("Unable to get quorum device info: {}\n", cs_strerror(timeout::cs(&e))));
                return 1;
            }
        };
        if !info.flags.contains(InfoFlags::QDEVICE_REGISTERED) {
            return 0;
        }
        match self.vq.qdevice_unregister(&info.qdevice_name) {
            Ok(()) => 0,
            Err(e) => {
                out::eprint(&format!(
                    "Unable to unregister quorum device: {}\n",
                    cs_strerror(timeout::cs(&e))
                ));
                1
            }
        }
    }

    fn quorum_provider(&mut self) -> String {
        match self.cmap.get_string("quorum.provider") {
            Ok(s) => s.chars().take(255).collect(),
            Err(_) => "Not configured".into(),
        }
    }

    /// `display_quorum_data`; the error is that of `votequorum_getinfo` (the C tool's return).
    fn display_quorum_data(&mut self, quorate: bool, fmt: Format) -> Result<(), CsError> {
        let provider = self.quorum_provider();
        let node_id =
            if fmt.hex { format!("0x{:08x}", self.our_nodeid) } else { self.our_nodeid.to_string() };
        let ring = format!("{:x}.{:x}", self.ring_rep_node, self.ring_seq);
        let mut text = String::new();
        if !fmt.json {
            text.push_str("Quorum information\n------------------\n");
            text.push_str(&format!("Date:             {}", crate::time::ctime_now()));
            text.push_str(&format!("Quorum provider:  {provider}\n"));
            text.push_str(&format!("Nodes:            {}\n", self.view.len()));
            text.push_str(&format!("Node ID:          {node_id}\n"));
            text.push_str(&format!("Ring ID:          {ring}\n"));
            text.push_str(&format!("Quorate:          {}\n", if quorate { "Yes" } else { "No" }));
        }
        let mut doc = json!({
            "quorum_provider": provider,
            "nodes": self.view.len(),
            "node_id": self.our_nodeid,
            "ring_id": {"nodeid": self.ring_rep_node, "seq": self.ring_seq, "text": ring},
            "quorate": quorate,
        });
        let result = match self.vq.get_info(self.our_nodeid) {
            Ok(info) => {
                let flags = flag_words(info.flags);
                text.push_str("\nVotequorum information\n----------------------\n");
                text.push_str(&format!("Expected votes:   {}\n", info.expected_votes as i32));
                text.push_str(&format!("Highest expected: {}\n", info.highest_expected as i32));
                text.push_str(&format!("Total votes:      {}\n", info.total_votes as i32));
                text.push_str(&format!(
                    "Quorum:           {} {}\n",
                    info.quorum as i32,
                    if info.is_quorate() { " " } else { "Activity blocked" }
                ));
                text.push_str("Flags:            ");
                for f in &flags {
                    text.push_str(f);
                    text.push(' ');
                }
                text.push('\n');
                doc["votequorum"] = json!({
                    "expected_votes": info.expected_votes,
                    "highest_expected": info.highest_expected,
                    "total_votes": info.total_votes,
                    "quorum": info.quorum,
                    "flags": flags,
                });
                Ok(())
            }
            Err(e) => {
                let e = timeout::cs(&e);
                out::eprint(&format!("Unable to get node info: {}\n", cs_strerror(e)));
                doc["votequorum"] = Json::Null;
                Err(e)
            }
        };
        if !fmt.json {
            out::print(&text);
        }
        let nodes = self.display_nodes_data(fmt);
        if fmt.json {
            doc["membership"] = nodes["membership"].clone();
            doc["qdevice"] = nodes["qdevice"].clone();
            crate::json::print_line(&doc);
        }
        result
    }

    /// `display_nodes_data`: prints the membership table (text mode) and returns its JSON.
    fn display_nodes_data(&mut self, fmt: Format) -> Json {
        let mut text = String::new();
        let mut display_qdevice = false;
        // One info per view entry, in the quorum service's order (the C tool keeps them in
        // that order even when it sorts the entries, which is mirrored below).
        let mut infos: Vec<Option<NodeInfo>> = Vec::new();
        for &id in &self.view.clone() {
            match self.vq.get_info(id) {
                Ok(info) => {
                    display_qdevice |= info.flags.contains(InfoFlags::QDEVICE_REGISTERED);
                    infos.push(Some(info));
                }
                Err(_) => {
                    text.push_str(&format!("Unable to get node {id} info\n"));
                    infos.push(None);
                }
            }
        }
        let mut entries: Vec<(u32, String)> =
            self.view.clone().into_iter().map(|id| (id, self.node_name(id, fmt))).collect();
        let qdevice_column = display_qdevice || fmt.machine_parsable;

        text.push_str("\nMembership information\n----------------------\n");
        text.push_str(&padded("Nodeid"));
        text.push_str(&padded("Votes"));
        if qdevice_column {
            text.push_str(&padded("Qdevice"));
        }
        text.push_str("Name\n");
        match fmt.sort {
            Sort::NodeId => entries.sort_by_key(|e| e.0),
            Sort::Name => entries.sort_by(|a, b| a.1.as_bytes().cmp(b.1.as_bytes())),
            Sort::Addr => {}
        }
        let mut our_flags = InfoFlags(0);
        let mut members = Vec::new();
        for (i, (id, name)) in entries.iter().enumerate() {
            let info = infos.get(i).cloned().flatten();
            let (votes, flags) = info.as_ref().map_or((0, InfoFlags(0)), |n| (n.votes, n.flags));
            if fmt.hex {
                text.push_str(&format!("0x{id:08x} "));
            } else {
                text.push_str(&padded(&id.to_string()));
            }
            text.push_str(&padded(&votes.to_string()));
            let qdevice = qdevice_column.then(|| {
                if flags.contains(InfoFlags::QDEVICE_REGISTERED) {
                    format!(
                        "{},{},{}",
                        if flags.contains(InfoFlags::QDEVICE_ALIVE) { "A" } else { "NA" },
                        if flags.contains(InfoFlags::QDEVICE_CAST_VOTE) { "V" } else { "NV" },
                        if flags.contains(InfoFlags::QDEVICE_MASTER_WINS) { "MW" } else { "NMW" },
                    )
                } else {
                    "NR".to_owned()
                }
            });
            if let Some(q) = &qdevice {
                text.push_str(&padded(q));
            }
            text.push_str(name);
            let local = *id == self.our_nodeid;
            if local {
                text.push_str(" (local)");
                our_flags = flags;
            }
            text.push('\n');
            members.push(json!({
                "nodeid": id,
                "votes": info.as_ref().map(|n| n.votes),
                "qdevice": qdevice,
                "name": name,
                "local": local,
            }));
        }
        let mut qdevice_doc = Json::Null;
        if display_qdevice {
            let first = infos.first().cloned().flatten();
            let (qvotes, qname) = first.map_or((0, String::new()), |n| (n.qdevice_votes, n.qdevice_name));
            let cast = our_flags.contains(InfoFlags::QDEVICE_CAST_VOTE);
            if fmt.hex {
                text.push_str(&format!("0x{QDEVICE_NODEID:08x} "));
            } else {
                text.push_str(&padded(&QDEVICE_NODEID.to_string()));
            }
            text.push_str(&padded(&(if cast { qvotes } else { 0 }).to_string()));
            text.push_str(&format!("           {qname}"));
            if cast {
                text.push('\n');
            } else {
                text.push_str(&format!(" (votes {})\n", qvotes as i32));
            }
            qdevice_doc = json!({"name": qname, "votes": qvotes, "cast_vote": cast});
        }
        if !fmt.json {
            out::print(&text);
        }
        json!({"membership": members, "qdevice": qdevice_doc})
    }

    /// The CMAP node list, read once.
    fn nodelist(&mut self) -> &[NodelistEntry] {
        if self.nodelist.is_none() {
            let mut entries: Vec<(u32, NodelistEntry)> = Vec::new();
            let keys: Vec<String> = match self.cmap.iter(Some("nodelist.node.")) {
                Ok(it) => it.map_while(timeout::ok).map(|(k, ..)| k).collect(),
                Err(_) => Vec::new(),
            };
            for key in keys {
                let Some(rest) = key.strip_prefix("nodelist.node.") else { continue };
                let Some((pos, field)) = rest.split_once('.') else { continue };
                let Ok(pos) = pos.parse::<u32>() else { continue };
                let idx = match entries.iter().position(|(p, _)| *p == pos) {
                    Some(i) => i,
                    None => {
                        entries.push((pos, NodelistEntry::default()));
                        entries.len() - 1
                    }
                };
                let entry = &mut entries[idx].1;
                if field == "nodeid" {
                    entry.nodeid = timeout::ok(self.cmap.get_u32(&key));
                } else if field == "name" {
                    entry.name = timeout::ok(self.cmap.get_string(&key));
                } else if let Some(n) = field.strip_prefix("ring").and_then(|f| f.strip_suffix("_addr")) {
                    if let (Ok(n), Some(addr)) = (n.parse::<usize>(), timeout::ok(self.cmap.get_string(&key)))
                    {
                        if entry.addrs.len() <= n {
                            entry.addrs.resize(n + 1, String::new());
                        }
                        entry.addrs[n] = addr;
                    }
                }
            }
            self.nodelist = Some(entries.into_iter().map(|(_, e)| e).collect());
        }
        self.nodelist.as_deref().unwrap_or_default()
    }

    /// `node_name`: the node list name (unless `-i`), then (all with `-a`, else the first)
    /// addresses: as IP addresses with `-i`, else as the names they resolve back to.
    fn node_name(&mut self, nodeid: u32, fmt: Format) -> String {
        let entry = self.nodelist().iter().find(|e| e.nodeid == Some(nodeid)).cloned().unwrap_or_default();
        let mut out = String::new();
        let mut start = 0;
        if !fmt.ip {
            if let Some(name) = entry.name.as_ref().filter(|n| !n.is_empty()) {
                out.push_str(name);
                start = 1;
            }
        }
        let addrs: Vec<&String> = entry.addrs.iter().filter(|a| !a.is_empty()).collect();
        let count = if fmt.all_addrs { addrs.len() } else { 1 };
        for (i, addr) in addrs.iter().enumerate().take(count).skip(start) {
            if i > 0 {
                out.push_str(", ");
            }
            let ip = resolve(addr);
            if fmt.ip {
                out.push_str(&ip);
            } else if let Some(name) = ip.parse().ok().and_then(name_of) {
                // getnameinfo without NI_NUMERICHOST: the name the address resolves to (the
                // numeric form when it has none), nothing when the lookup fails.
                out.push_str(&name);
            }
        }
        out
    }
}

/// A configured address as an IP address (the first one it resolves to).
fn resolve(addr: &str) -> String {
    if addr.parse::<core::net::IpAddr>().is_ok() {
        return addr.to_owned();
    }
    (addr, 0u16)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map_or_else(|| addr.to_owned(), |a| a.ip().to_string())
}

/// `print_string_padded`: right-aligned in 10 columns, then a space.
fn padded(s: &str) -> String {
    format!("{s:>10} ")
}

/// The words of the `Flags:` line: every set flag but the quorum-device states, which the C
/// tool prints per node instead.
fn flag_words(flags: InfoFlags) -> Vec<&'static str> {
    let per_node = InfoFlags::QDEVICE_ALIVE | InfoFlags::QDEVICE_CAST_VOTE | InfoFlags::QDEVICE_MASTER_WINS;
    InfoFlags(flags.0 & !per_node.0).words().collect()
}
