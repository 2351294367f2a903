//! The live channel to a watched program: a FIFO in a private (0700) directory, named to the
//! program in `POOLSCOPE_EVENTS`. A FIFO rather than an inherited descriptor, because
//! multiprocessing's spawn and forkserver start methods close inherited descriptors; the
//! program's processes each open it themselves (`O_WRONLY | O_NONBLOCK`).

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::{PYTHON_PROBE_FILES, PYTHON_PROBE_NATIVE};

/// The environment variable that names the channel.
pub const EVENTS_ENV: &str = "POOLSCOPE_EVENTS";
/// The environment variable that lets the Python probe show task arguments (`--args`).
pub const ARGS_ENV: &str = "POOLSCOPE_ARGS";

/// A private directory holding the FIFO and the Python probe; removed on drop.
pub struct EventFifo {
    dir: PathBuf,
    fifo: PathBuf,
    keepalive: Option<File>,
    reader: Option<File>,
}

impl EventFifo {
    /// Makes the directory (0700) under `parent` (the system's temporary directory when
    /// `None`), the FIFO (0600) and the Python probe, and opens the FIFO's read end.
    pub fn create(parent: Option<&Path>) -> io::Result<EventFifo> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let dir = make_private_dir(&parent)?;
        let mut fifo = EventFifo {
            fifo: dir.join("events"),
            dir,
            keepalive: None,
            reader: None,
        };
        write_probe(&fifo.dir)?;
        let c_path = CString::new(fifo.fifo.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
        // SAFETY: mkfifo reads a valid NUL-terminated path and touches no memory of ours.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // Non-blocking so the open does not wait for a writer; then blocking reads, with our
        // own write end held open so that reading does not end before the program starts.
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo.fifo)?;
        fifo.keepalive = Some(
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&fifo.fifo)?,
        );
        set_blocking(&reader)?;
        grow_pipe(&reader);
        fifo.reader = Some(reader);
        Ok(fifo)
    }

    /// Whether the private directory is still there: a guard that ended normally has
    /// removed it (its last act), one that was killed has not.
    pub fn dir_left(&self) -> bool {
        std::fs::symlink_metadata(&self.dir).is_ok()
    }

    /// The FIFO's path: the value of `POOLSCOPE_EVENTS`.
    pub fn path(&self) -> &Path {
        &self.fifo
    }

    /// The directory to put first on `PYTHONPATH` (it holds the probe as `sitecustomize.py`).
    pub fn probe_dir(&self) -> &Path {
        &self.dir
    }

    /// The read end, once: reads block until events arrive, and end (EOF) once
    /// [`EventFifo::program_exited`] was called and every process of the program closed it.
    pub fn take_reader(&mut self) -> Option<File> {
        self.reader.take()
    }

    /// Drops poolscope's own write end, so the reader sees the end of the stream when the
    /// program's last process closes the FIFO.
    pub fn program_exited(&mut self) {
        self.keepalive = None;
    }
}

impl Drop for EventFifo {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Writes the Python probe's files, with its native part where it was built, into the
/// private directory `dir`, each created new (the directory is ours and fresh: nothing there
/// to follow or replace).
pub fn write_probe(dir: &Path) -> io::Result<()> {
    let native = Some(("poolscope_probe/_fast.abi3.so", PYTHON_PROBE_NATIVE))
        .filter(|(_, bytes)| !bytes.is_empty());
    let files = PYTHON_PROBE_FILES
        .iter()
        .map(|&(rel, text)| (rel, text.as_bytes()));
    for (rel, bytes) in files.chain(native) {
        let path = dir.join(rel);
        if let Some(parent) = path.parent().filter(|p| !p.exists()) {
            fs::DirBuilder::new().mode(0o700).create(parent)?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        io::Write::write_all(&mut file, bytes)?;
    }
    Ok(())
}

fn make_private_dir(parent: &Path) -> io::Result<PathBuf> {
    let pid = std::process::id();
    for attempt in 0..100u32 {
        let dir = parent.join(format!("poolscope-{pid}-{}-{attempt}", fastrand::u32(..)));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "cannot make a private directory for the event channel",
    ))
}

/// Asks for a 1 MiB FIFO buffer (the unprivileged maximum by default; 64 KiB otherwise), so
/// a burst of events waits in the pipe rather than being dropped by the program.
fn grow_pipe(file: &File) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: fcntl on a descriptor we own, with integer arguments only.
        #[allow(unsafe_code)]
        unsafe {
            libc::fcntl(file.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

fn set_blocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    #[allow(unsafe_code)]
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
