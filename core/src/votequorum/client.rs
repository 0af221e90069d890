//! The client half of votequorum: its [`Service`] implementation for
//! [`Connection`](crate::conn::Connection) (libvotequorum, `lib/votequorum.c`).

use super::{Notification, Reply, Request, RequestKind, Response, SERVICE_NAME};
use crate::conn::{Service, SubmitError, Token};
use crate::error::{CsError, DecodeError};

/// The votequorum service.
#[derive(Debug)]
pub struct Votequorum;

impl Service for Votequorum {
    const NAME: &'static str = SERVICE_NAME;
    type Kind = RequestKind;
    type Request<'a> = Request<'a>;
    type Response<'a> = Response<'a>;
    type Event<'a> = Notification<'a>;
    type State = ();
    type Context = ();

    fn kind(req: &Request<'_>) -> RequestKind {
        req.kind()
    }

    fn response_id(kind: RequestKind) -> i32 {
        kind.response_id()
    }

    /// QDEVICE_REGISTER: libvotequorum's callers wait for it before polling the device.
    fn is_barrier(kind: RequestKind) -> bool {
        kind == RequestKind::QdeviceRegister
    }

    fn on_submit(_: &mut (), _: &Request<'_>, _: (), _: Token) -> Result<(), SubmitError> {
        Ok(())
    }

    fn decode_reply(buf: &[u8]) -> Result<Result<Response<'_>, CsError>, DecodeError> {
        Reply::decode(buf).map(Reply::into_result)
    }

    fn on_reply(_: &mut (), _: Token, _: &Result<Response<'_>, CsError>, _: bool) {}

    fn route<'a>(_: &(), buf: &'a [u8]) -> Result<Option<Notification<'a>>, DecodeError> {
        Notification::decode(buf).map(Some)
    }
}
