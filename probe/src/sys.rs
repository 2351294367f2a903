//! The three clocks and ids the protocol needs, straight from the kernel.

/// Reads `clock`; `None` if the kernel refuses (it does not, for these clocks on Linux).
fn clock_ns(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and `clock` one of the constants below.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(clock, &raw mut ts) };
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    (rc == 0).then(|| secs * 1_000_000_000 + nanos)
}

/// `CLOCK_MONOTONIC` in nanoseconds: the protocol's clock, shared by every process.
pub(crate) fn mono_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC).unwrap_or(0)
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`).
pub(crate) fn thread_cpu_ns() -> Option<u64> {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

thread_local! {
    /// This thread's kernel id, asked once: `gettid` is a system call, and a thread's id
    /// never changes.
    static TID: i64 = {
        // SAFETY: gettid has no preconditions and cannot fail.
        #[allow(unsafe_code)]
        let tid = unsafe { libc::gettid() };
        i64::from(tid)
    };
}

/// The calling thread's kernel id, as `/proc/PID/task` lists it.
pub(crate) fn gettid() -> i64 {
    TID.with(|t| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_clock_counts_work_and_not_sleep() {
        let (c0, t0) = (thread_cpu_ns().unwrap(), mono_ns());
        std::thread::sleep(std::time::Duration::from_millis(30));
        let slept = thread_cpu_ns().unwrap() - c0;
        assert!(mono_ns() - t0 >= 30_000_000);
        assert!(slept < 10_000_000, "a sleep used {slept} ns of CPU");
        let c1 = thread_cpu_ns().unwrap();
        let mut x = 0u64;
        while thread_cpu_ns().unwrap() - c1 < 20_000_000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(x > 0);
        let tid = gettid();
        assert!(std::path::Path::new(&format!("/proc/self/task/{tid}")).exists());
    }
}
