//! Starting the watched program: in its own process group, under its guard, with the event
//! channel and the probe; and the guard that ends its whole tree.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::process::Stdio;

use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::{Msg, ProgramError, ProgramSpec};
use crate::source::channel::{ARGS_ENV, EVENTS_ENV, EventFifo};
use crate::source::program_output::forward_output;

/// Ends the program's whole tree when dropped: asks its guard process, which kills every
/// descendant, or kills the process group when there is no guard.
pub struct ProgramGuard {
    pgid: Option<i32>,
    /// The guard process's pid (it leads the group), until it has been reaped.
    guard: Option<i32>,
}

impl ProgramGuard {
    /// Ends the tree: the guard is asked (it kills every descendant, then exits), else the
    /// group is killed.
    pub(super) fn end(&mut self) {
        match self.guard {
            Some(pid) => {
                // SAFETY: kill with our own un-reaped child's pid and valid signal numbers.
                // SIGCONT: a guard the program stopped (`kill -STOP $PPID`) acts at once,
                // rather than after END_LIMIT.
                #[allow(unsafe_code)]
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                    libc::kill(pid, libc::SIGCONT);
                }
            }
            None => self.kill(libc::SIGKILL),
        }
    }

    /// The guard has been reaped: its pid is no longer ours to signal.
    pub(super) fn reaped(&mut self) {
        self.guard = None;
    }

    pub(super) fn kill(&mut self, signal: i32) {
        if let Some(pgid) = self.pgid {
            // SAFETY: killpg with a group id we created and a valid signal number.
            #[allow(unsafe_code)]
            unsafe {
                libc::killpg(pgid, signal);
            }
        }
    }
}

impl Drop for ProgramGuard {
    fn drop(&mut self) {
        if self.guard.is_some() {
            self.end();
        } else {
            self.kill(libc::SIGKILL);
        }
        // A program that killed its guard left its processes to poolscope: they go now.
        crate::source::guard::end_adopted();
    }
}

/// Starts the program in its own process group, with the channel and the probe.
pub(super) fn spawn(
    spec: &ProgramSpec,
    fifo: &EventFifo,
    tx: &mpsc::Sender<Msg>,
) -> Result<(Child, ProgramGuard), ProgramError> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(ProgramError::Spawn {
            program: String::new(),
            cause: std::io::Error::other("no program given"),
        });
    };
    let mut python_path = OsString::from(fifo.probe_dir());
    if let Some(old) = std::env::var_os("PYTHONPATH").filter(|p| !p.is_empty()) {
        python_path.push(":");
        python_path.push(old);
    }
    let mut cmd = match &spec.guard {
        Some(exe) => {
            // Said here, as a spawn error, rather than as the guard's exit 127.
            crate::source::guard::resolve(program).map_err(|cause| ProgramError::Spawn {
                program: program.to_string_lossy().into_owned(),
                cause,
            })?;
            let mut cmd = Command::new(exe);
            cmd.args(crate::source::guard::command_args(
                std::process::id(),
                fifo.probe_dir(),
                &spec.argv,
            ));
            cmd
        }
        None => {
            let mut cmd = Command::new(program);
            cmd.args(args).kill_on_drop(true);
            cmd
        }
    };
    cmd.env(EVENTS_ENV, fifo.path())
        .env("PYTHONPATH", python_path)
        .process_group(0);
    if spec.show_args {
        cmd.env(ARGS_ENV, "1");
    }
    if spec.capture_output {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    } else if spec.stdout_to_stderr {
        let stderr = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map_err(ProgramError::Channel)?;
        cmd.stdout(Stdio::from(stderr));
    }
    let mut child = cmd.spawn().map_err(|cause| ProgramError::Spawn {
        program: program.to_string_lossy().into_owned(),
        cause,
    })?;
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let guard = ProgramGuard {
        pgid,
        guard: pgid.filter(|_| spec.guard.is_some()),
    };
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward_output(stdout, false, tx.clone(), Msg::Output));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_output(stderr, true, tx.clone(), Msg::Output));
    }
    Ok((child, guard))
}
