//! The per-connection directory (`qb-...`, docs/protocol.md §2.1, §3) that holds a client's
//! transport files, held by descriptor from connect time on (issue 13, item 6): the client
//! maps its files through it and later removes them through it, never by a path that
//! another user could redirect.

use core::fmt;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{open, openat, AtFlags, OFlag};
use nix::sys::socket::{getsockopt, sockopt};
use nix::sys::stat::{fstat, fstatat, Mode};
use nix::unistd::{unlinkat, Uid, UnlinkatFlags};

use super::error::TransportError;
use crate::sys::shm::SharedMapping;

/// Why a client refused what a server's setup response named: a server that could make it
/// map or remove a file that is not the connection's (issue 13, item 6). libqb's client
/// checks none of this; corosync (root) passes every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Untrusted {
    /// The server runs as a user that is neither root nor the client's own (`SO_PEERCRED`
    /// on the setup socket).
    ServerUser {
        /// The server's uid.
        uid: u32,
    },
    /// The server's credentials cannot be read from the setup socket.
    NoCredentials(Errno),
    /// The named file is not in a directory named `qb-...`.
    NotInConnectionDir,
    /// The connection directory cannot be opened as one (`ELOOP` or `ENOTDIR` for a symbolic
    /// link or a file).
    Directory(Errno),
    /// The connection directory belongs to a user that is neither the server's nor the
    /// client's.
    DirectoryOwner {
        /// The directory's uid.
        uid: u32,
    },
    /// The control file belongs to a user that is neither the server's nor the client's.
    FileOwner {
        /// The file's uid.
        uid: u32,
    },
}

impl fmt::Display for Untrusted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServerUser { uid } => {
                write!(f, "the server runs as uid {uid}, neither root nor this client's user")
            }
            Self::NoCredentials(e) => write!(f, "the server's credentials cannot be read ({e})"),
            Self::NotInConnectionDir => f.write_str("the server named a file outside a qb-* directory"),
            Self::Directory(e) => write!(f, "the connection directory cannot be opened ({e})"),
            Self::DirectoryOwner { uid } => {
                write!(f, "the connection directory belongs to uid {uid}, neither the server's nor ours")
            }
            Self::FileOwner { uid } => {
                write!(f, "the control file belongs to uid {uid}, neither the server's nor ours")
            }
        }
    }
}

impl core::error::Error for Untrusted {}

/// An open connection directory whose server and owner were checked.
#[derive(Debug)]
pub(crate) struct ConnDir {
    /// The directory, opened `O_DIRECTORY | O_NOFOLLOW`.
    dir: OwnedFd,
    /// Its path, as the setup response named it.
    path: PathBuf,
    /// The users whose files the client may map: the server's and its own.
    owners: [Uid; 2],
}

impl ConnDir {
    /// Checks the server behind the connected setup socket `setup` (root or the client's own
    /// user) and opens the directory that holds `file`, a path from its setup response: it
    /// must be named `qb-...`, be a directory and not a symbolic link, and belong to the
    /// server's or the client's user.
    ///
    /// # Errors
    /// [`TransportError::Untrusted`] saying which check failed.
    pub(crate) fn open(setup: &OwnedFd, file: &Path) -> Result<Self, TransportError> {
        let untrusted = |e| TransportError::Untrusted(e);
        let creds = getsockopt(setup, sockopt::PeerCredentials)
            .map_err(|e| untrusted(Untrusted::NoCredentials(e)))?;
        let (server, me) = (Uid::from_raw(creds.uid()), Uid::effective());
        if !server.is_root() && server != me {
            return Err(untrusted(Untrusted::ServerUser { uid: server.as_raw() }));
        }
        let path = file.parent().ok_or(untrusted(Untrusted::NotInConnectionDir))?;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(untrusted(Untrusted::NotInConnectionDir));
        };
        if !name.as_bytes().starts_with(b"qb-") || file.file_name().is_none() {
            return Err(untrusted(Untrusted::NotInConnectionDir));
        }
        let directory = |e| untrusted(Untrusted::Directory(e));
        let parent = open(parent, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(directory)?;
        let flags = OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let dir = openat(parent, name, flags, Mode::empty()).map_err(directory)?;
        let owners = [server, me];
        let uid = Uid::from_raw(fstat(&dir).map_err(directory)?.st_uid);
        if !owners.contains(&uid) {
            return Err(untrusted(Untrusted::DirectoryOwner { uid: uid.as_raw() }));
        }
        Ok(Self { dir, path: path.to_path_buf(), owners })
    }

    /// Whether `file` names a file in this directory.
    pub(crate) fn holds(&self, file: &Path) -> bool {
        file.parent() == Some(self.path.as_path()) && file.file_name().is_some()
    }

    /// Maps `file` (a file in this directory, [`ConnDir::holds`]) through the directory's
    /// descriptor, never following a symbolic link ([`SharedMapping::open_at`]); the file must
    /// belong to the server's or the client's user.
    ///
    /// # Errors
    /// [`TransportError::Untrusted`] for a file elsewhere or of another user;
    /// [`TransportError::Io`] if it cannot be opened or mapped.
    pub(crate) fn map(&self, file: &Path) -> Result<SharedMapping, TransportError> {
        let name = self.name_of(file).ok_or(TransportError::Untrusted(Untrusted::NotInConnectionDir))?;
        let (mapping, uid) =
            SharedMapping::open_at(self.dir.as_fd(), Path::new(name)).map_err(TransportError::Io)?;
        if !self.owners.contains(&uid) {
            return Err(TransportError::Untrusted(Untrusted::FileOwner { uid: uid.as_raw() }));
        }
        Ok(mapping)
    }

    /// The name of `file` in this directory, if it is in it.
    fn name_of<'a>(&self, file: &'a Path) -> Option<&'a OsStr> {
        self.holds(file).then(|| file.file_name()).flatten()
    }

    /// Removes `file` (with `-header`-like `suffix` appended to its name) from this
    /// directory through its descriptor (`unlinkat`). Best effort: a file already gone stays
    /// gone, and a file of another directory is never touched.
    pub(crate) fn unlink(&self, file: &Path, suffix: &str) {
        if let Some(name) = self.name_of(file) {
            let mut name = name.to_owned();
            name.push(suffix);
            let _ = unlinkat(&self.dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }

    /// Removes the directory if it is empty and its path still names the directory that
    /// was opened (not a link or another directory swapped in). Best effort.
    pub(crate) fn remove(&self) {
        let (Some(parent), Some(name)) = (self.path.parent(), self.path.file_name()) else { return };
        let Ok(parent) = open(parent, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        else {
            return;
        };
        let (Ok(ours), Ok(there)) = (fstat(&self.dir), fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW))
        else {
            return;
        };
        if (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino) {
            let _ = unlinkat(&parent, name, UnlinkatFlags::RemoveDir);
        }
    }
}
