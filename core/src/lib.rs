#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(any(feature = "std", test))]
extern crate std;

pub mod cfg;
pub mod cmap;
pub mod codec;
pub mod conn;
pub mod dispatch;
pub mod driver;
pub mod error;
pub mod qb;
pub mod quorum;
pub mod ring;
pub mod server;
pub mod stream;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod transport;
pub mod value;
pub mod votequorum;
pub mod wire;

pub use codec::{frame_len, Status};
pub use conn::{Cmap, Connection, Votequorum};
pub use dispatch::{Dispatch, DispatchMode, Step, Wait};
pub use error::{CsError, DecodeError, EncodeError, SetupError};
pub use time::{Duration, Instant};
