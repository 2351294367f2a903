//! The one rule for files poolscope writes (`--trace`, `--svg`, the `e` export, bench
//! exports): never onto an input, never through a symbolic link, and either created new or
//! replaced atomically.
//!
//! - **Never the input.** Inputs (`--replay`, `--scenario`, the program's files) are noted as
//!   they are named, with [`note_input`]; an output that is the same file (same device and
//!   inode, however it is spelt: a hard link, `./x`, a symlink's target) is refused before
//!   anything is opened, so a recording is never truncated before it is read.
//! - **Never through a symlink.** An output path that is a symbolic link is refused, and a
//!   file is only ever opened with `O_NOFOLLOW` and created with `O_EXCL`.
//! - **New, or replaced atomically.** A path that does not exist is created exclusively and
//!   written in place (a killed run keeps what it wrote); an existing file is left whole until
//!   a complete new one, written beside it, is renamed over it. The new one is an unnamed
//!   file (`O_TMPFILE`) given a name only once complete, so a `kill -9` leaves nothing
//!   behind; where the filesystem cannot, a named temporary file is used instead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// Inputs named so far: (device, inode, the path as given).
static INPUTS: Mutex<Vec<(u64, u64, PathBuf)>> = Mutex::new(Vec::new());
/// Numbers temporary files within the process.
static TEMP_SEQ: AtomicU32 = AtomicU32::new(0);

/// Why an output file cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output is one of poolscope's inputs.
    #[error("{path}: is the input {input}; poolscope never writes onto its input")]
    IsInput {
        /// The output path.
        path: String,
        /// The input it is.
        input: String,
    },
    /// The output path is a symbolic link.
    #[error("{0}: is a symbolic link; poolscope never writes through one")]
    Symlink(String),
    /// The output path is a directory.
    #[error("{0}: is a directory")]
    Directory(String),
    /// The file could not be opened or written.
    #[error("cannot write {path}: {cause}")]
    Io {
        /// The output path.
        path: String,
        /// The OS error.
        cause: io::Error,
    },
}

impl OutputError {
    fn io(path: &Path, cause: io::Error) -> Self {
        OutputError::Io {
            path: path.display().to_string(),
            cause,
        }
    }
}

/// Notes `path` as an input of this run (if it is a file that exists), so no output is
/// written onto it.
pub fn note_input(path: &Path) {
    if let Ok(meta) = fs::metadata(path) {
        let mut inputs = INPUTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !inputs
            .iter()
            .any(|(d, i, _)| (*d, *i) == (meta.dev(), meta.ino()))
        {
            inputs.push((meta.dev(), meta.ino(), path.to_path_buf()));
        }
    }
}

/// Notes the program `argv[0]` names as an input: the file `execvp` runs (a bare name found on
/// `PATH`), so `--trace python3 -- python3 app.py` cannot replace the interpreter.
pub fn note_program(program: &std::ffi::OsString) {
    if let Ok(path) = crate::source::guard::resolve(program) {
        note_input(&path);
    }
}

/// The input `meta` is, if it is one. The input's path must still name that inode: an input
/// removed since has freed its inode number for reuse by an unrelated new file. poolscope's
/// own executable counts as an input of every run.
fn input_of(meta: &fs::Metadata) -> Option<PathBuf> {
    let same = |m: &fs::Metadata| (m.dev(), m.ino()) == (meta.dev(), meta.ino());
    if let Ok(exe) = std::env::current_exe()
        && fs::metadata(&exe).is_ok_and(|m| same(&m))
    {
        return Some(exe);
    }
    let inputs = INPUTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    inputs
        .iter()
        .find(|(d, i, p)| {
            (*d, *i) == (meta.dev(), meta.ino()) && fs::metadata(p).is_ok_and(|m| same(&m))
        })
        .map(|(_, _, p)| p.clone())
}

/// A file being written under the rule; [`OutputFile::commit`] ends it. Dropped without a
/// commit, a new file keeps what was written and a replacement is put in place if every
/// write succeeded (a run cut short by an error still leaves its trace), else discarded.
#[derive(Debug)]
pub struct OutputFile {
    file: Option<File>,
    path: PathBuf,
    /// The temporary file being written, when an existing file is to be replaced.
    temp: Option<PathBuf>,
    /// The temporary file has no name yet (`O_TMPFILE`): `temp` is the one it gets.
    unnamed: bool,
    failed: bool,
}

impl OutputFile {
    /// Opens `path` for writing under the rule.
    pub fn create(path: &Path) -> Result<OutputFile, OutputError> {
        let Some(meta) = check(path)? else {
            let file = create_new(path).map_err(|e| OutputError::io(path, e))?;
            return Ok(OutputFile::new(file, path, None));
        };
        if !meta.is_file() {
            // A FIFO or a device (`/dev/null`): written to as it is, nothing to replace.
            let file = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| OutputError::io(path, e))?;
            return Ok(OutputFile::new(file, path, None));
        }
        let (temp, file, unnamed) = create_temp(path).map_err(|e| OutputError::io(path, e))?;
        // The replacement keeps the old file's permissions: a private (0600) file stays
        // private, rather than taking the umask's 0644.
        if let Err(e) = file.set_permissions(meta.permissions()) {
            if !unnamed {
                let _ = fs::remove_file(&temp);
            }
            return Err(OutputError::io(path, e));
        }
        let mut out = OutputFile::new(file, path, Some(temp));
        out.unnamed = unnamed;
        Ok(out)
    }

    fn new(file: File, path: &Path, temp: Option<PathBuf>) -> Self {
        OutputFile {
            file: Some(file),
            path: path.to_path_buf(),
            temp,
            unnamed: false,
            failed: false,
        }
    }

    /// Flushes the file and, when it replaces an existing one, renames it into place.
    pub fn commit(mut self) -> Result<(), OutputError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), OutputError> {
        let Some(mut file) = self.file.take() else {
            return Ok(());
        };
        file.flush().map_err(|e| OutputError::io(&self.path, e))?;
        if self.unnamed
            && let Some(temp) = &self.temp
        {
            name_unnamed(&file, temp).map_err(|e| OutputError::io(&self.path, e))?;
        }
        drop(file);
        if let Some(temp) = self.temp.take()
            && let Err(e) = fs::rename(&temp, &self.path)
        {
            let _ = fs::remove_file(&temp);
            return Err(OutputError::io(&self.path, e));
        }
        Ok(())
    }
}

impl Write for OutputFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("closed"))?;
        file.write(buf).inspect_err(|_| self.failed = true)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush().inspect_err(|_| self.failed = true),
            None => Ok(()),
        }
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if self.failed {
            self.file = None;
            if let Some(temp) = self.temp.take()
                && !self.unnamed
            {
                let _ = fs::remove_file(temp);
            }
        } else {
            let _ = self.finish();
        }
    }
}

/// Whether `path` may be written under the rule (checked again when it is opened): what is
/// there now, if anything.
pub fn check(path: &Path) -> Result<Option<fs::Metadata>, OutputError> {
    let shown = || path.display().to_string();
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(OutputError::io(path, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(OutputError::Symlink(shown()));
    }
    if meta.is_dir() {
        return Err(OutputError::Directory(shown()));
    }
    if let Some(input) = input_of(&meta) {
        return Err(OutputError::IsInput {
            path: shown(),
            input: input.display().to_string(),
        });
    }
    Ok(Some(meta))
}

/// Creates `path`, which must not exist, without following a symlink planted there.
pub fn create_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A new temporary file beside `path`, in the same directory so a rename replaces atomically:
/// the name it has or will get, the file, and whether it is still unnamed (`O_TMPFILE`).
fn create_temp(path: &Path) -> io::Result<(PathBuf, File, bool)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    let unnamed = OpenOptions::new()
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(&dir);
    loop {
        let n = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{name}.poolscope-{}-{n}.tmp", std::process::id()));
        if let Ok(file) = &unnamed {
            // The name is only a candidate: it is checked free when the file is linked.
            if fs::symlink_metadata(&temp).is_ok() && n < 10_000 {
                continue;
            }
            return Ok((temp, file.try_clone()?, true));
        }
        match create_new(&temp) {
            Ok(file) => return Ok((temp, file, false)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 10_000 => {}
            Err(e) => return Err(e),
        }
    }
}

/// Gives an unnamed (`O_TMPFILE`) file the name `temp`, which must not exist, through
/// `/proc/self/fd` (linking by descriptor itself needs a privilege).
fn name_unnamed(file: &File, temp: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = std::ffi::CString::new(temp.as_os_str().as_bytes())?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call; linkat
    // reads them and touches no other memory.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes `bytes` to `path` under the rule, whole.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let mut out = OutputFile::create(path)?;
    out.write_all(bytes).map_err(|e| OutputError::io(path, e))?;
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("poolscope-output-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_new_file_is_created_and_an_old_one_replaced_whole() {
        let dir = scratch("replace");
        let path = dir.join("out.svg");
        write_file(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        let before = fs::metadata(&path).unwrap().ino();
        let mut out = OutputFile::create(&path).unwrap();
        out.write_all(b"two").unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"one",
            "the old file stays until commit"
        );
        out.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_ne!(
            fs::metadata(&path).unwrap().ino(),
            before,
            "renamed into place"
        );
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "no temporary file left"
        );
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn symlinks_and_inputs_are_refused() {
        let dir = scratch("refuse");
        let input = dir.join("rec.json");
        fs::write(&input, "precious").unwrap();
        std::os::unix::fs::symlink(&input, dir.join("link")).unwrap();
        std::os::unix::fs::symlink(dir.join("nowhere"), dir.join("dangling")).unwrap();
        fs::hard_link(&input, dir.join("hard")).unwrap();
        note_input(&input);
        for name in ["link", "dangling"] {
            let e = OutputFile::create(&dir.join(name)).unwrap_err();
            assert!(matches!(e, OutputError::Symlink(_)), "{e}");
        }
        for name in ["rec.json", "hard"] {
            let e = OutputFile::create(&dir.join(name)).unwrap_err();
            assert!(matches!(e, OutputError::IsInput { .. }), "{e}");
        }
        assert!(!dir.join("nowhere").exists());
        assert_eq!(fs::read_to_string(&input).unwrap(), "precious");
        let _ = fs::remove_dir_all(dir);
    }
}
