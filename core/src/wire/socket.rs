//! The libqb socket transport's control file (connection type 0, docs/protocol.md §3): three
//! `{i32 sent; i32 flow_control}` pairs, for the request, response and event channels, in a
//! file both sides map. `sent` counts datagrams sent and not yet received.

/// Size of the control file: `{i32 sent; i32 flow_control}` for request, response, event.
pub const CONTROL_LEN: usize = 24;
/// Offset of the request channel's `sent` counter in the control file.
pub const REQUEST_SENT: usize = 0;
/// Offset of the request channel's flow-control value.
pub const REQUEST_FLOW_CONTROL: usize = 4;
/// Offset of the response channel's `sent` counter.
pub const RESPONSE_SENT: usize = 8;
/// Offset of the event channel's `sent` counter.
pub const EVENT_SENT: usize = 16;
