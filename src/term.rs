//! The terminal, owned by one guard: raw mode, the alternate screen, bracketed paste, the
//! order of the panic hooks, and job control (SIGTSTP/SIGCONT), as htop and tokio-console do.
//!
//! Whatever ends poolscope (quit, error, panic, signal), the terminal is given back as it was
//! found. Stopped with SIGTSTP (or Ctrl-Z), it gives the terminal back before it stops and
//! takes it again, redrawing everything, once continued.

use std::io::{self, Stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossterm::cursor::{Hide, Show};
use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    KeyCode,
};
use crossterm::terminal::{
    Clear, ClearType, EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::mpsc;

use crate::dashboard::{Input, Screen};

/// Set while poolscope holds the terminal, so the panic hook knows to give it back.
static HELD: AtomicBool = AtomicBool::new(false);
static HOOKS: Once = Once::new();
/// How often the key reader looks up from the terminal to see whether it is still wanted.
const READ_POLL: Duration = Duration::from_millis(250);

/// The real terminal, held in raw mode on the alternate screen until dropped.
pub struct TerminalGuard {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    /// Takes the terminal. Installs, once, a panic hook that gives the terminal back before
    /// the panic is reported, and inside it the filter that keeps a task's caught panic from
    /// reaching either.
    pub fn enter() -> io::Result<Self> {
        HOOKS.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                give_back();
                previous(info);
            }));
            crate::pool::task::install_panic_filter();
        });
        take()?;
        match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(terminal) => Ok(TerminalGuard { terminal }),
            Err(e) => {
                give_back();
                Err(e)
            }
        }
    }
}

/// Raw mode, the alternate screen, bracketed paste (a paste is one event, so pasted text
/// cannot press `q`), the mouse (click a lane, wheel scrolls), no cursor. Undoes what it did if a step fails.
fn take() -> io::Result<()> {
    // After a stop the shell may have put the terminal back in cooked mode behind
    // crossterm's back; forgetting the old raw state makes the next call really set it.
    let _ = disable_raw_mode();
    enable_raw_mode()?;
    HELD.store(true, Ordering::SeqCst);
    let entered = crossterm::execute!(
        io::stdout(),
        EnterAlternateScreen,
        EnableBracketedPaste,
        EnableMouseCapture,
        Hide
    );
    if entered.is_err() {
        give_back();
    }
    entered
}

/// Gives the terminal back as it was found, if we hold it. Safe to call from a panic hook
/// and more than once.
pub fn give_back() {
    if HELD.swap(false, Ordering::SeqCst) {
        // Each step is tried even if another failed: a half-restored terminal is worse.
        let _ = crossterm::execute!(
            io::stdout(),
            DisableBracketedPaste,
            DisableMouseCapture,
            LeaveAlternateScreen,
            Show
        );
        let _ = disable_raw_mode();
    }
}

/// Whether the locale asks for UTF-8: the first of `LC_ALL`, `LC_CTYPE`, `LANG` that is set
/// and not empty decides, as setlocale does; none set is the C locale, which is ASCII.
pub fn locale_is_utf8(var: impl Fn(&str) -> Option<String>) -> bool {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .into_iter()
        .find_map(|name| var(name).filter(|v| !v.is_empty()))
        .is_some_and(|v| {
            let v = v.to_ascii_lowercase();
            v.contains("utf-8") || v.contains("utf8")
        })
}

/// When to use colour (`--color`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour unless `NO_COLOR` is set (and, for text, unless the output is not a terminal).
    #[default]
    Auto,
    /// Always colour, even with `NO_COLOR`.
    Always,
    /// Never colour.
    Never,
}

impl ColorChoice {
    /// Whether to colour, given `NO_COLOR`'s value and whether the output is a terminal.
    pub fn colour(self, no_color: Option<&str>, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            // https://no-color.org: set and not empty means no colour.
            ColorChoice::Auto => terminal && no_color.is_none_or(str::is_empty),
        }
    }
}

impl Screen for TerminalGuard {
    type Backend = CrosstermBackend<Stdout>;

    fn terminal(&mut self) -> &mut Terminal<Self::Backend> {
        &mut self.terminal
    }

    fn suspend(&mut self) -> io::Result<()> {
        give_back();
        stop_self()?;
        // Here only once continued (`fg`).
        self.resume()
    }

    fn resume(&mut self) -> io::Result<()> {
        take()?;
        // The screen is whatever the shell left: blank it and forget the last frame, so the
        // next one is drawn whole. (`Terminal::clear` would ask the terminal for the cursor
        // position, which a terminal may never answer.)
        crossterm::execute!(io::stdout(), Clear(ClearType::All))?;
        self.terminal.swap_buffers();
        Ok(())
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        give_back();
    }
}

/// Stops this process as SIGTSTP's default action would have (SIGSTOP cannot be caught).
fn stop_self() -> io::Result<()> {
    // SAFETY: raise() only sends a signal to the calling thread's process; no memory is
    // touched. SIGSTOP stops every thread until SIGCONT, then raise returns.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::raise(libc::SIGSTOP) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Keys already waiting together beyond this many are a paste the terminal did not bracket
/// (a human, or a held key, never has this many queued at once): they are delivered as one
/// paste, never as keystrokes.
pub const BURST_KEYS: usize = 32;
/// Text kept of such a burst; the rest is read and dropped.
const BURST_TEXT_MAX: usize = 64 * 1024;

/// Reads terminal events on a thread of its own and sends them to `inputs`, until the
/// receiver is dropped or the terminal cannot be read (then says so, and ends).
pub fn spawn_reader(inputs: mpsc::Sender<Input>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("keys".into())
        .spawn(move || {
            loop {
                let batch = match crossterm::event::poll(READ_POLL) {
                    Ok(false) if inputs.is_closed() => return,
                    Ok(false) => continue,
                    Ok(true) => read_waiting(),
                    Err(e) => vec![Input::TerminalFailed(e)],
                };
                for input in batch {
                    let failed = matches!(input, Input::TerminalFailed(_));
                    // Blocks while the loop is behind: a key flood waits in the terminal.
                    if inputs.blocking_send(input).is_err() || failed {
                        return;
                    }
                }
            }
        })
        .map(drop)
}

/// Every event already waiting: one by one, except a run of more than [`BURST_KEYS`]
/// character keys, which becomes one paste of their text.
fn read_waiting() -> Vec<Input> {
    let mut out = Vec::new();
    let mut keys: Vec<Event> = Vec::new();
    let mut text = String::new();
    let mut count = 0usize;
    loop {
        match crossterm::event::read() {
            Ok(Event::Key(k)) if is_typed(&k) => {
                count += 1;
                if let KeyCode::Char(c) = k.code
                    && text.len() < BURST_TEXT_MAX
                {
                    text.push(c);
                }
                if keys.len() <= BURST_KEYS {
                    keys.push(Event::Key(k));
                }
            }
            Ok(ev) => {
                flush_keys(&mut out, &mut keys, &mut text, count);
                count = 0;
                out.push(Input::Terminal(ev));
            }
            Err(e) => {
                flush_keys(&mut out, &mut keys, &mut text, count);
                out.push(Input::TerminalFailed(e));
                return out;
            }
        }
        if !matches!(crossterm::event::poll(Duration::ZERO), Ok(true)) {
            flush_keys(&mut out, &mut keys, &mut text, count);
            return out;
        }
    }
}

/// A plain character key being pressed (what a paste is made of).
fn is_typed(k: &crossterm::event::KeyEvent) -> bool {
    k.kind != crossterm::event::KeyEventKind::Release
        && matches!(k.code, KeyCode::Char(_) | KeyCode::Enter | KeyCode::Tab)
        && !k
            .modifiers
            .contains(crossterm::event::KeyModifiers::CONTROL)
}

fn flush_keys(out: &mut Vec<Input>, keys: &mut Vec<Event>, text: &mut String, count: usize) {
    if count > BURST_KEYS {
        out.push(Input::Terminal(Event::Paste(std::mem::take(text))));
    } else {
        out.extend(keys.drain(..).map(Input::Terminal));
    }
    keys.clear();
    text.clear();
}

/// Turns a receiver into the stream of inputs the dashboard loop takes.
pub fn input_stream(
    mut rx: mpsc::Receiver<Input>,
) -> impl futures_util::Stream<Item = Input> + Unpin {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod look_tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_string())
        }
    }

    #[test]
    fn the_first_locale_variable_set_decides_utf8() {
        assert!(locale_is_utf8(env(&[("LANG", "en_US.UTF-8")])));
        assert!(locale_is_utf8(env(&[
            ("LC_CTYPE", "C.utf8"),
            ("LANG", "C")
        ])));
        assert!(!locale_is_utf8(env(&[
            ("LC_ALL", "C"),
            ("LANG", "en_US.UTF-8")
        ])));
        assert!(locale_is_utf8(env(&[
            ("LC_ALL", ""),
            ("LANG", "de_DE.UTF-8")
        ])));
        assert!(!locale_is_utf8(env(&[])), "no locale is the C locale");
    }

    #[test]
    fn no_color_is_honoured_unless_colour_is_forced() {
        assert!(ColorChoice::Auto.colour(None, true));
        assert!(
            ColorChoice::Auto.colour(Some(""), true),
            "empty NO_COLOR is unset"
        );
        assert!(!ColorChoice::Auto.colour(Some("1"), true));
        assert!(!ColorChoice::Auto.colour(None, false));
        assert!(ColorChoice::Always.colour(Some("1"), false));
        assert!(!ColorChoice::Never.colour(None, true));
    }
}
