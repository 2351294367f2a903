//! The few Linux calls poolscope needs: one shared clock, kernel thread ids, parent-death signal.

use std::io;

/// Nanoseconds on `CLOCK_MONOTONIC`.
///
/// `Instant` is opaque and cannot cross a process boundary; this clock is the same in the
/// coordinator and in every worker child, so workers can stamp their own start and finish.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    debug_assert_eq!(rc, 0);
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time the calling thread has used, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`); `None`
/// if the clock cannot be read. The difference of two readings around a task is the CPU the
/// task's thread spent on it: less than its wall time when it waited (a lock, a core, I/O).
pub fn thread_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux knows.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    (rc == 0).then(|| (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The CPU time from reading `before` to now on the calling thread.
pub fn thread_cpu_since(before: Option<u64>) -> Option<u64> {
    // No reading before, no reading now: the clock is read only when it gives a figure.
    let before = before?;
    Some(thread_cpu_ns()?.saturating_sub(before))
}

/// The kernel thread id (TID) of the calling thread, as `ps -L` and `/proc/<pid>/task` show it.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let tid = unsafe { libc::gettid() };
    tid
}

/// Asks the kernel to SIGKILL the calling process when the thread that spawned it dies.
///
/// Called by a worker as it starts (or between fork and exec): the check that its parent is
/// still `expected_parent` closes the window in which the parent could die unnoticed. Only
/// async-signal-safe calls happen here.
pub fn die_with_parent(expected_parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory of ours.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // The parent may have died before prctl took effect; then we were re-parented already.
    // SAFETY: getppid has no preconditions.
    #[allow(unsafe_code)]
    let parent = unsafe { libc::getppid() };
    if parent != expected_parent {
        return Err(io::Error::other("parent already exited"));
    }
    Ok(())
}

/// The soft limit on open file descriptors, if it can be read.
pub fn fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) };
    (rc == 0).then_some(lim.rlim_cur)
}

/// Raises the soft limit on open file descriptors to the hard limit (each process worker
/// costs three, and 256 of them do not fit the common soft limit of 1024); returns the soft
/// limit now in force, if it can be read.
pub fn raise_fd_limit() -> Option<u64> {
    /// The kernel's usual ceiling (`fs.nr_open`); an unlimited hard limit is not settable.
    const CEILING: libc::rlim_t = 1 << 20;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) };
    if rc != 0 {
        return None;
    }
    let wanted = lim.rlim_max.min(CEILING);
    if lim.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; raising the soft limit up to the hard one
        // needs no privilege. If it fails, the old limit simply stays.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const raised) };
        if rc == 0 {
            return Some(raised.rlim_cur);
        }
    }
    Some(lim.rlim_cur)
}

/// The process's peak resident memory so far, in KiB (`None` if it cannot be read).
pub fn peak_rss_kib() -> Option<i64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the pointer it is given.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage succeeded, so the struct is initialised.
    #[allow(unsafe_code)]
    let usage = unsafe { usage.assume_init() };
    Some(usage.ru_maxrss)
}

/// How many file descriptors this process has open now (0 if /proc cannot say).
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Sends `signal` to process `pid`; a process that is already gone is not an error.
pub fn signal_process(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: kill() touches no memory; a stale pid at worst yields ESRCH.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            return Err(err);
        }
    }
    Ok(())
}

/// The conventional name of a signal number (`SIGKILL`), or `signal N`.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}
