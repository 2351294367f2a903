//! Reads a process tree's scheduler figures from `/proc`: every thread of the root process,
//! and every descendant process (each as one lane, its threads summed).
//!
//! The per-sample cost is one `pread` of `schedstat` per thread, on a descriptor kept open
//! (a `seq_file` regenerates its text on every read from offset 0). Finding new threads and
//! processes (directory listings, `stat` for names and parents) is done less often, by
//! [`Tree::discover`]. Everything read is bounded: at most [`MAX_TASKS`] threads are kept
//! open, the rest are counted as untracked. Only files `top -H -p` reads are read; nothing
//! is ever written, signalled or traced.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Most threads sampled at once (each holds one open descriptor).
pub const MAX_TASKS: usize = 512;
/// Most processes remembered while classifying `/proc` (live PIDs only).
const MAX_PIDS_SEEN: usize = 1 << 16;
/// Longest `stat` or `schedstat` text read; real ones are a few hundred bytes.
const MAX_STAT: usize = 1024;

/// A lane the kernel knows: a thread of the root process, or a whole descendant process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LaneKey {
    /// Thread `tid` of the root process `pid`.
    Thread {
        /// The root process.
        pid: u32,
        /// The thread.
        tid: u32,
    },
    /// A descendant process, its threads summed.
    Process {
        /// Its PID.
        pid: u32,
    },
}

impl LaneKey {
    /// The process the lane belongs to.
    pub fn pid(self) -> u32 {
        match self {
            LaneKey::Thread { pid, .. } | LaneKey::Process { pid } => pid,
        }
    }
}

/// One thread's open `schedstat` and its last figures.
struct Task {
    file: File,
    lane: LaneKey,
    cpu: u64,
    wait: u64,
    /// Discoveries left in which its name is read again: a thread often names itself just
    /// after it starts, after it was found.
    young: u8,
}

/// Discoveries after a thread is found during which its name is re-read each time.
const YOUNG: u8 = 10;

/// A lane's figures: its live threads' latest plus what its exited threads had earned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LaneFigures {
    /// Its name (`comm`).
    pub name: String,
    /// Cumulative nanoseconds on a CPU.
    pub on_cpu_ns: u64,
    /// Cumulative nanoseconds waiting on a run queue.
    pub wait_ns: u64,
    /// The scheduler state letter, when read at the last discovery.
    pub state: Option<u8>,
    /// Figures of its threads that have exited (a process lane's).
    dead_cpu: u64,
    dead_wait: u64,
    /// Threads of it still sampled.
    threads: u32,
}

/// What changed in the tree at a discovery or a read.
#[derive(Debug, Default)]
pub struct Changes {
    /// Lanes found: new, or renamed (their name changed).
    pub appeared: Vec<LaneKey>,
    /// Lanes whose threads are all gone.
    pub gone: Vec<LaneKey>,
}

/// The process tree being watched.
pub struct Tree {
    root: u32,
    root_start: u64,
    tasks: HashMap<(u32, u32), Task>,
    lanes: HashMap<LaneKey, LaneFigures>,
    /// Descendant processes (the root excluded).
    descendants: HashSet<u32>,
    /// PIDs already classified as outside the tree, with their start time (a reused PID
    /// is a new process).
    outside: HashMap<u32, u64>,
    /// Threads found beyond [`MAX_TASKS`] at the last discovery.
    pub untracked: u32,
    root_gone: bool,
}

/// What `/proc/PID/stat` says that matters here.
struct Stat {
    comm: String,
    state: u8,
    ppid: u32,
    start: u64,
}

/// Reads `/proc/{path}/stat`, bounded.
fn read_stat(path: &str) -> io::Result<Stat> {
    let file = File::open(format!("/proc/{path}/stat"))?;
    let mut buf = [0u8; MAX_STAT];
    let n = file.read_at(&mut buf, 0)?;
    parse_stat(&buf[..n]).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad stat"))
}

/// Parses `pid (comm) S ppid …`: comm may hold spaces and parentheses, so it runs to the
/// last `)`. Field 22 is the start time in clock ticks since boot.
fn parse_stat(text: &[u8]) -> Option<Stat> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    let comm = String::from_utf8_lossy(text.get(open + 1..close)?).into_owned();
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    let ppid = fields.next()?.parse().ok()?;
    // After state and ppid, the start time is the 20th of the remaining fields.
    let start = fields.nth(17)?.parse().ok()?;
    Some(Stat {
        comm,
        state,
        ppid,
        start,
    })
}

/// Parses `schedstat`: on-CPU ns, run-queue wait ns, time slices.
fn parse_schedstat(text: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(text).ok()?;
    let mut fields = text.split_ascii_whitespace();
    let cpu = fields.next()?.parse().ok()?;
    let wait = fields.next()?.parse().ok()?;
    Some((cpu, wait))
}

/// Reads an open `schedstat` again from its start.
fn reread(file: &File) -> Option<(u64, u64)> {
    let mut buf = [0u8; 128];
    let n = file.read_at(&mut buf, 0).ok()?;
    parse_schedstat(&buf[..n])
}

/// The numeric entries of a `/proc` directory.
fn numeric_entries(dir: &str) -> io::Result<Vec<u32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        if let Some(n) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Whether a state letter means the process is over (zombie or dead).
fn is_over(state: u8) -> bool {
    matches!(state, b'Z' | b'X' | b'x')
}

impl Tree {
    /// The tree rooted at `pid`: an error, in the OS's words, if it does not exist or its
    /// scheduler figures cannot be read.
    pub fn attach(pid: u32) -> io::Result<Tree> {
        let stat = read_stat(&pid.to_string())?;
        if is_over(stat.state) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "it has exited"));
        }
        let schedstat = File::open(format!("/proc/{pid}/task/{pid}/schedstat"))?;
        reread(&schedstat)
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "no scheduler statistics"))?;
        Ok(Tree {
            root: pid,
            root_start: stat.start,
            tasks: HashMap::new(),
            lanes: HashMap::new(),
            descendants: HashSet::new(),
            outside: HashMap::new(),
            untracked: 0,
            root_gone: false,
        })
    }

    /// The root process's PID.
    pub fn root(&self) -> u32 {
        self.root
    }

    /// Whether the root process has exited (or its PID now names another process).
    pub fn root_gone(&self) -> bool {
        self.root_gone
    }

    /// The figures of `lane`, if it is alive.
    pub fn lane(&self, lane: LaneKey) -> Option<&LaneFigures> {
        self.lanes.get(&lane)
    }

    /// The lanes alive, in key order.
    pub fn lanes(&self) -> impl Iterator<Item = (LaneKey, &LaneFigures)> {
        let mut keys: Vec<LaneKey> = self.lanes.keys().copied().collect();
        keys.sort_unstable();
        keys.into_iter()
            .filter_map(|k| self.lanes.get(&k).map(|f| (k, f)))
    }

    /// Finds new threads and descendant processes and opens their figures; with `names`,
    /// re-reads every thread's name and state too. Appended to `changes`.
    pub fn discover(&mut self, names: bool, changes: &mut Changes) {
        match read_stat(&self.root.to_string()) {
            Ok(s) if !is_over(s.state) && s.start == self.root_start => {}
            _ => {
                self.root_gone = true;
                return;
            }
        }
        self.find_descendants();
        let mut procs: Vec<u32> = self.descendants.iter().copied().collect();
        procs.sort_unstable();
        procs.insert(0, self.root);
        self.untracked = 0;
        for pid in procs {
            let Ok(tids) = numeric_entries(&format!("/proc/{pid}/task")) else {
                continue;
            };
            for tid in tids {
                self.task(pid, tid, names, changes);
            }
        }
        changes.appeared.sort_unstable();
        changes.appeared.dedup();
    }

    /// Takes in thread `tid` of process `pid`: opens it when new, reads its name when new
    /// or when `names` asks.
    fn task(&mut self, pid: u32, tid: u32, names: bool, changes: &mut Changes) {
        let lane = if pid == self.root {
            LaneKey::Thread { pid, tid }
        } else {
            LaneKey::Process { pid }
        };
        let young = match self.tasks.get_mut(&(pid, tid)) {
            Some(task) => {
                task.young = task.young.saturating_sub(1);
                Some(task.young > 0)
            }
            None => None,
        };
        let known = young.is_some();
        if !known && self.tasks.len() >= MAX_TASKS {
            self.untracked += 1;
            return;
        }
        if known && !names && young != Some(true) {
            return;
        }
        // A process lane is named by its main thread; a thread lane by itself.
        let named_here = match lane {
            LaneKey::Thread { .. } => true,
            LaneKey::Process { .. } => tid == pid,
        };
        let stat = if named_here {
            read_stat(&format!("{pid}/task/{tid}")).ok()
        } else {
            None
        };
        if !known {
            let Ok(file) = File::open(format!("/proc/{pid}/task/{tid}/schedstat")) else {
                return;
            };
            let (cpu, wait) = reread(&file).unwrap_or_default();
            self.tasks.insert(
                (pid, tid),
                Task {
                    file,
                    lane,
                    cpu,
                    wait,
                    young: YOUNG,
                },
            );
        }
        let figures = self.lanes.entry(lane).or_default();
        if !known {
            figures.threads += 1;
            if figures.threads == 1 {
                changes.appeared.push(lane);
            }
        }
        if let Some(stat) = stat {
            figures.state = Some(stat.state);
            if figures.name != stat.comm {
                if !figures.name.is_empty() {
                    changes.appeared.push(lane);
                }
                figures.name = stat.comm;
            }
        }
    }

    /// Adds the processes whose parent is the root or a descendant, classifying each PID of
    /// `/proc` once (a process never moves into a tree it was born outside of).
    fn find_descendants(&mut self) {
        let Ok(pids) = numeric_entries("/proc") else {
            return;
        };
        let live: HashSet<u32> = pids.iter().copied().collect();
        self.descendants.retain(|p| live.contains(p));
        self.outside.retain(|p, _| live.contains(p));
        let mut fresh: Vec<(u32, Stat)> = Vec::new();
        for pid in pids {
            if pid == self.root || self.descendants.contains(&pid) {
                continue;
            }
            if self.outside.contains_key(&pid) {
                continue;
            }
            if let Ok(stat) = read_stat(&pid.to_string()) {
                fresh.push((pid, stat));
            }
        }
        // Parents may be listed after their children: settle the new ones in rounds.
        loop {
            let before = fresh.len();
            fresh.retain(|(pid, stat)| {
                let inside = stat.ppid == self.root || self.descendants.contains(&stat.ppid);
                if inside && !is_over(stat.state) {
                    self.descendants.insert(*pid);
                }
                !inside
            });
            if fresh.len() == before {
                break;
            }
        }
        for (pid, stat) in fresh {
            if self.outside.len() < MAX_PIDS_SEEN {
                self.outside.insert(pid, stat.start);
            }
        }
    }

    /// Reads every open thread's figures; threads that are gone are closed, and lanes left
    /// with none are reported in `changes.gone`.
    pub fn read(&mut self, changes: &mut Changes) {
        for fig in self.lanes.values_mut() {
            fig.on_cpu_ns = fig.dead_cpu;
            fig.wait_ns = fig.dead_wait;
        }
        let mut ended: Vec<(u32, u32)> = Vec::new();
        for (key, task) in &mut self.tasks {
            match reread(&task.file) {
                Some((cpu, wait)) => {
                    // The kernel's figures only grow; a smaller one is a reused TID.
                    task.cpu = cpu.max(task.cpu);
                    task.wait = wait.max(task.wait);
                }
                None => ended.push(*key),
            }
            if let Some(fig) = self.lanes.get_mut(&task.lane) {
                fig.on_cpu_ns = fig.on_cpu_ns.saturating_add(task.cpu);
                fig.wait_ns = fig.wait_ns.saturating_add(task.wait);
            }
        }
        for key in ended {
            let Some(task) = self.tasks.remove(&key) else {
                continue;
            };
            let Some(fig) = self.lanes.get_mut(&task.lane) else {
                continue;
            };
            // An exited thread's time stays in its process's total.
            fig.dead_cpu = fig.dead_cpu.saturating_add(task.cpu);
            fig.dead_wait = fig.dead_wait.saturating_add(task.wait);
            fig.threads = fig.threads.saturating_sub(1);
            if fig.threads == 0 {
                self.lanes.remove(&task.lane);
                changes.gone.push(task.lane);
            }
        }
        changes.gone.sort_unstable();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_may_hold_spaces_and_parentheses() {
        let text = b"42 (a (b) c) S 7 42 42 0 -1 4194560 1 0 0 0 3 4 0 0 20 0 1 0 12345 1 1 \
                     18446744073709551615";
        let s = parse_stat(text).unwrap();
        assert_eq!(s.comm, "a (b) c");
        assert_eq!((s.state, s.ppid, s.start), (b'S', 7, 12345));
        assert!(parse_stat(b"42 (x").is_none());
        assert!(parse_stat(b"").is_none());
    }

    #[test]
    fn schedstat_gives_cpu_and_wait() {
        assert_eq!(
            parse_schedstat(b"18252 54411476 173\n"),
            Some((18_252, 54_411_476))
        );
        assert_eq!(parse_schedstat(b"garbage"), None);
    }

    #[test]
    fn our_own_threads_are_lanes_and_a_spinning_one_earns_cpu() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let spinner = std::thread::spawn(move || {
            let tid = crate::sys::gettid();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::hint::spin_loop();
            }
            tid
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut tree = Tree::attach(std::process::id()).unwrap();
        let mut changes = Changes::default();
        tree.discover(true, &mut changes);
        tree.read(&mut changes);
        std::thread::sleep(std::time::Duration::from_millis(100));
        let before: HashMap<LaneKey, u64> = tree.lanes().map(|(k, f)| (k, f.on_cpu_ns)).collect();
        tree.read(&mut changes);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let tid = u32::try_from(spinner.join().unwrap()).unwrap();
        let key = LaneKey::Thread {
            pid: std::process::id(),
            tid,
        };
        let earned = tree.lane(key).unwrap().on_cpu_ns - before[&key];
        assert!(
            earned > 10_000_000,
            "a spinning thread earned only {earned} ns"
        );
        // Its exit is noticed at the next read.
        let mut changes = Changes::default();
        tree.read(&mut changes);
        assert!(changes.gone.contains(&key), "{changes:?}");
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(Tree::attach(u32::MAX - 1).is_err());
    }
}
