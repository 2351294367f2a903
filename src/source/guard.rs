//! The one owner of a watched program's process tree: `poolscope guard`, a small process
//! poolscope starts in place of the program, which starts the program and outlives a
//! `kill -9` of poolscope long enough to end the whole tree.
//!
//! The guard is a child subreaper (`PR_SET_CHILD_SUBREAPER`), so every process of the
//! program that loses its parent (a daemonised helper, a `setsid` grandchild, the workers of
//! a killed pool) becomes its child instead of init's: none can slip out of reach. It ends
//! the tree — every descendant, found by walking `/proc`, killed with SIGKILL until none is
//! left — when poolscope asks (SIGTERM, SIGINT, SIGHUP), when poolscope is gone (its parent
//! changed: checked every few milliseconds, immune to the spawning thread's exit that would
//! fire a parent-death signal early), and when the program has exited and what it left
//! behind is still there after a grace period. It then removes the event channel's private
//! directory and exits as the program did (its exit code, or the same signal), so poolscope
//! sees the program's end as before.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The hidden subcommand that runs the guard.
pub const SUBCOMMAND: &str = "guard";
/// How long what the program left behind may live on after it exited (it may hold the event
/// channel for a last line, or clean up: multiprocessing's resource tracker).
pub const GRACE: Duration = Duration::from_secs(2);
/// How often the guard looks at its children, its parent and its signals.
const TICK: Duration = Duration::from_millis(5);
/// How long ending the tree may take before the guard gives up on stragglers.
const KILL_LIMIT: Duration = Duration::from_secs(3);

/// The signal that asked the guard to end the tree (0: none yet).
static STOP: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop(signal: libc::c_int) {
    STOP.store(signal, Ordering::SeqCst);
}

/// The arguments that make `exe` a guard of `argv`, for poolscope `parent`.
pub fn command_args(parent: u32, fifo_dir: &Path, argv: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        SUBCOMMAND.into(),
        "--parent".into(),
        parent.to_string().into(),
        "--fifo-dir".into(),
        fifo_dir.as_os_str().to_owned(),
        "--".into(),
    ];
    args.extend(argv.iter().cloned());
    args
}

/// Runs the guard: starts `argv`, ends its tree as described above, and exits as it did.
pub fn run(parent: u32, fifo_dir: Option<&Path>, argv: &[OsString]) -> ! {
    let status = guard(parent, argv);
    if let Some(dir) = fifo_dir {
        remove_channel_dir(dir);
    }
    exit_as(status)
}

/// How the program ended, as `waitpid` says; `None` if it never started or was not seen.
fn guard(parent: u32, argv: &[OsString]) -> Option<libc::c_int> {
    if let Err(e) = become_subreaper() {
        eprintln!("poolscope guard: cannot become the program's subreaper: {e}");
        return None;
    }
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        catch(signal);
    }
    if std::os::unix::process::parent_id() != parent {
        return None; // poolscope is already gone: start nothing
    }
    let (program, args) = argv.split_first()?;
    let child = match std::process::Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("poolscope: cannot start {}: {e}", program.to_string_lossy());
            return Some(127 << 8);
        }
    };
    let pid = libc::pid_t::try_from(child.id()).ok()?;
    watch(pid, parent)
}

/// Reaps children until the program has ended and nothing of it is left, or until poolscope
/// asks or is gone; then ends the tree. The program's wait status, if seen.
fn watch(program: libc::pid_t, parent: u32) -> Option<libc::c_int> {
    let mut status = None;
    let mut exited_at: Option<Instant> = None;
    loop {
        reap(program, &mut status);
        if status.is_some() && exited_at.is_none() {
            exited_at = Some(Instant::now());
        }
        let asked = STOP.load(Ordering::SeqCst) != 0;
        let orphaned = std::os::unix::process::parent_id() != parent;
        let late = exited_at.is_some_and(|at| at.elapsed() > GRACE);
        if asked || orphaned || late {
            end_tree(program, &mut status);
            return status;
        }
        if exited_at.is_some() && descendants().is_empty() {
            return status;
        }
        std::thread::sleep(TICK);
    }
}

/// Reaps every child that has ended, noting the program's status.
fn reap(program: libc::pid_t, status: &mut Option<libc::c_int>) {
    loop {
        let mut raw: libc::c_int = 0;
        // SAFETY: waitpid writes the status into a valid c_int; WNOHANG never blocks.
        #[allow(unsafe_code)]
        let pid = unsafe { libc::waitpid(-1, &raw mut raw, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        if pid == program {
            *status = Some(raw);
        }
    }
}

/// Kills every descendant with SIGKILL, again and again as orphans come to us, until none is
/// left (or [`KILL_LIMIT`] passes), reaping them.
fn end_tree(program: libc::pid_t, status: &mut Option<libc::c_int>) {
    let start = Instant::now();
    loop {
        reap(program, status);
        let left = descendants();
        if left.is_empty() || start.elapsed() > KILL_LIMIT {
            return;
        }
        for pid in left {
            // SAFETY: kill touches no memory; a pid that just ended yields ESRCH.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Every living process whose chain of parents leads to this one, from `/proc`.
fn descendants() -> Vec<libc::pid_t> {
    let me = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    let mut found = below(&process_table(), &[me]);
    found.retain(|&p| p != me);
    found
}

/// Every living process and its parent, from `/proc` (zombies left out).
fn process_table() -> Vec<(libc::pid_t, libc::pid_t)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect()
}

/// `roots` and every process of `table` whose chain of parents leads to one of them.
fn below(table: &[(libc::pid_t, libc::pid_t)], roots: &[libc::pid_t]) -> Vec<libc::pid_t> {
    let mut found = roots.to_vec();
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(table.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found
}

/// Whether this process adopts orphans ([`adopt_orphans`]).
static ADOPTING: AtomicBool = AtomicBool::new(false);

/// Makes this process (the poolscope binary, not a library user, whose other children could
/// not be told from orphans) a child subreaper too: a program that kills its own guard
/// (`kill -9 $PPID`) leaves its processes to poolscope instead of init, and
/// [`end_adopted`] ends them.
pub fn adopt_orphans() -> std::io::Result<()> {
    become_subreaper()?;
    ADOPTING.store(true, Ordering::SeqCst);
    Ok(())
}

/// Kills every process this one adopted — its children that do not run poolscope's own
/// executable (its guards and workers do) — and their descendants, with SIGKILL until none
/// is left (or three seconds pass), reaping them. Nothing unless [`adopt_orphans`] was
/// called. Called when a watched program's run ends and as poolscope exits.
pub fn end_adopted() {
    if !ADOPTING.load(Ordering::SeqCst) {
        return;
    }
    let Some(own) = executable_of("self") else {
        return;
    };
    let start = Instant::now();
    let mut killed: Vec<libc::pid_t> = Vec::new();
    loop {
        // Only pids killed here are reaped: a guard's status belongs to whoever waits for it.
        killed.retain(|&pid| !reaped(pid));
        let table = process_table();
        let left = below(&table, &adopted(&table, own));
        if left.is_empty() || start.elapsed() > KILL_LIMIT {
            break;
        }
        for &pid in &left {
            // SAFETY: kill touches no memory; a pid that just ended yields ESRCH.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            if !killed.contains(&pid) {
                killed.push(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    killed.retain(|&pid| !reaped(pid));
}

/// Whether any process has come back to this one as an orphan (see [`end_adopted`]), living
/// or already ended (a zombie): after a guard ended, a sign that it was killed before it
/// could end the program's tree.
pub fn any_adopted() -> bool {
    if !ADOPTING.load(Ordering::SeqCst) {
        return false;
    }
    let me = std::process::id().to_string();
    let (Some(own), Ok(own_name)) = (
        executable_of("self"),
        std::fs::read_to_string("/proc/self/comm"),
    ) else {
        return false;
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .any(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((head, fields)) = stat.rsplit_once(')') else {
                return false;
            };
            let ours = fields.split_whitespace().nth(1) == Some(me.as_str());
            // a zombie's executable cannot be read: its name tells a worker or guard
            let own_kind = match executable_of(&pid) {
                Some(exe) => exe == own,
                None => head
                    .rsplit_once('(')
                    .is_some_and(|(_, n)| n == own_name.trim()),
            };
            ours && !own_kind
        })
}

/// This process's children in `table` that do not run its executable `own`: orphans it
/// adopted, not its guards or workers.
fn adopted(table: &[(libc::pid_t, libc::pid_t)], own: (u64, u64)) -> Vec<libc::pid_t> {
    let me = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    table
        .iter()
        .filter(|&&(pid, parent)| {
            parent == me && executable_of(&pid.to_string()).is_none_or(|exe| exe != own)
        })
        .map(|&(pid, _)| pid)
        .collect()
}

/// Reaps `pid` if it is a child of this process that has ended; true if it is gone (reaped
/// now, or not a child of ours at all).
fn reaped(pid: libc::pid_t) -> bool {
    let mut raw: libc::c_int = 0;
    // SAFETY: waitpid writes the status into a valid c_int; WNOHANG never blocks.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::waitpid(pid, &raw mut raw, libc::WNOHANG) };
    rc != 0
}

/// The device and inode of the file process `pid` (or `self`) runs, if it can be seen.
fn executable_of(pid: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((m.dev(), m.ino()))
}

/// The program a guard started: the first living process whose parent is `guard`, looked for
/// in `/proc` for at most `within` (the guard starts it at once; one that has already ended is
/// not found, and then there is nothing left to sample).
pub fn program_of(guard: u32, within: Duration) -> Option<u32> {
    let guard = libc::pid_t::try_from(guard).ok()?;
    let until = Instant::now() + within;
    loop {
        let found = std::fs::read_dir("/proc").ok()?.find_map(|e| {
            let pid = e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok()?;
            (parent_of(pid)? == guard).then_some(pid)
        });
        if let Some(pid) = found {
            return u32::try_from(pid).ok();
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A living process's parent, from `/proc/PID/stat` (`None` for a zombie or one now gone).
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields follow the last `)`.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.next()?.parse().ok()
}

fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes an integer flag and touches no memory.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Installs [`on_stop`] for `signal` (the program gets default handlers back at exec).
fn catch(signal: libc::c_int) {
    // SAFETY: a zeroed sigaction with a handler that only stores to an atomic, which is
    // async-signal-safe; sigaction reads the struct and touches no other memory.
    #[allow(unsafe_code)]
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_stop as *const () as libc::sighandler_t;
        libc::sigemptyset(&raw mut action.sa_mask);
        libc::sigaction(signal, &raw const action, std::ptr::null_mut());
    }
}

/// Removes the event channel's directory, if it is one of poolscope's private directories.
fn remove_channel_dir(dir: &Path) {
    let ours = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("poolscope-"));
    let is_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    if ours && is_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Exits the way the program did: its exit code, or killed by the same signal.
fn exit_as(status: Option<libc::c_int>) -> ! {
    let Some(status) = status else {
        std::process::exit(1)
    };
    if libc::WIFEXITED(status) {
        std::process::exit(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit reads a valid rlimit; signal/raise take plain integers. The guard
        // dies here by the program's signal, with no core file of its own.
        #[allow(unsafe_code)]
        unsafe {
            libc::setrlimit(libc::RLIMIT_CORE, &raw const no_core);
            libc::signal(signal, libc::SIG_DFL);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&raw mut set);
            libc::sigaddset(&raw mut set, signal);
            libc::sigprocmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut());
            libc::raise(signal);
        }
        std::process::exit(128 + signal);
    }
    std::process::exit(1)
}

/// `program` as `execvp` would find it: a path as given, else the first executable file of
/// that name on `PATH`; so a program that does not exist is said before the guard starts.
pub fn resolve(program: &OsString) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = Path::new(program);
    if path.components().count() > 1 || program.to_string_lossy().contains('/') {
        return if executable(path) {
            Ok(path.to_path_buf())
        } else {
            std::fs::metadata(path)
                .and_then(|_| Err(std::io::Error::from_raw_os_error(libc::EACCES)))
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&search)
        .map(|dir| dir.join(path))
        .find(|candidate| executable(candidate))
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))
}
