//! Named colour roles, so every colour on screen has one meaning and a theme can change
//! them all at once: `dark` (the default), `light` (readable on a white background) and
//! `mono` (no colour, meaning carried by weight and reversal).

use ratatui::style::{Color, Modifier, Style};

/// The palette the views draw with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    /// The theme's name, as `--theme` spells it.
    pub name: &'static str,
    /// A task that sleeps or waits (I/O-like): `blocks`, `fail`, the sleeping half of `mixed`.
    pub sleep: Style,
    /// A task that computes (CPU-bound): `spin`, the spinning half of `mixed`; also high CPU %.
    pub cpu: Style,
    /// A task whose kind of work is not known (`noop`, programs, replays).
    pub task: Style,
    /// Patched onto a task's colour for the part of its bar spent off-CPU (waiting for the
    /// GIL, a lock, a core, I/O): drawn `┄` in the colour alone, beside the filled part that
    /// ran.
    pub off_cpu: Style,
    /// A task that failed, a worker that died.
    pub failed: Style,
    /// A task past its timeout, a paused display, a notice: look here.
    pub warning: Style,
    /// Work that completed: the `ok` count, a finished run.
    pub ok: Style,
    /// Idle time, exited workers, secondary text.
    pub dim: Style,
    /// Panel borders.
    pub border: Style,
    /// The title bar.
    pub title: Style,
    /// Key names in the footer and the help.
    pub key: Style,
    /// The kernel says the thread was on a CPU (a lane's state strip).
    pub state_running: Style,
    /// The kernel says it was runnable but waiting for a CPU.
    pub state_waiting: Style,
    /// The kernel says it slept or was blocked.
    pub state_sleeping: Style,
}

impl Default for Theme {
    fn default() -> Self {
        Theme::dark()
    }
}

impl Theme {
    /// For terminals with a dark background.
    pub fn dark() -> Theme {
        Theme {
            name: "dark",
            sleep: Style::new().fg(Color::Blue),
            cpu: Style::new().fg(Color::Magenta),
            task: Style::new().fg(Color::Cyan),
            off_cpu: Style::new(),
            failed: Style::new().fg(Color::Red),
            warning: Style::new().fg(Color::Yellow),
            ok: Style::new().fg(Color::Green),
            dim: Style::new().fg(Color::DarkGray),
            border: Style::new().fg(Color::Gray),
            title: Style::new().fg(Color::Black).bg(Color::Cyan),
            key: Style::new().fg(Color::Black).bg(Color::Gray),
            state_running: Style::new().fg(Color::Green),
            state_waiting: Style::new().fg(Color::LightRed),
            state_sleeping: Style::new().fg(Color::DarkGray),
        }
    }

    /// For terminals with a light background: darker hues, no yellow or green text on white.
    pub fn light() -> Theme {
        Theme {
            name: "light",
            sleep: Style::new().fg(Color::Rgb(0, 70, 170)),
            cpu: Style::new().fg(Color::Rgb(140, 0, 140)),
            task: Style::new().fg(Color::Rgb(0, 110, 120)),
            off_cpu: Style::new(),
            failed: Style::new().fg(Color::Rgb(190, 0, 0)),
            warning: Style::new().fg(Color::Rgb(150, 90, 0)),
            ok: Style::new().fg(Color::Rgb(0, 120, 0)),
            dim: Style::new().fg(Color::Rgb(110, 110, 110)),
            border: Style::new().fg(Color::Rgb(90, 90, 90)),
            title: Style::new().fg(Color::White).bg(Color::Rgb(0, 90, 120)),
            key: Style::new().fg(Color::White).bg(Color::Rgb(90, 90, 90)),
            state_running: Style::new().fg(Color::Rgb(0, 130, 0)),
            state_waiting: Style::new().fg(Color::Rgb(200, 60, 0)),
            state_sleeping: Style::new().fg(Color::Rgb(150, 150, 150)),
        }
    }

    /// No colour at all: meaning by glyph, weight and reversal.
    pub fn mono() -> Theme {
        let plain = Style::new();
        Theme {
            name: "mono",
            sleep: plain,
            cpu: plain.add_modifier(Modifier::BOLD),
            task: plain,
            off_cpu: plain.add_modifier(Modifier::DIM),
            failed: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            warning: plain.add_modifier(Modifier::BOLD),
            ok: plain,
            dim: plain.add_modifier(Modifier::DIM),
            border: plain,
            title: plain.add_modifier(Modifier::REVERSED),
            key: plain.add_modifier(Modifier::REVERSED),
            // Told apart by glyph (█ ▒ ▁) where there is no colour.
            state_running: plain.add_modifier(Modifier::BOLD),
            state_waiting: plain,
            state_sleeping: plain.add_modifier(Modifier::DIM),
        }
    }

    /// The theme called `name`, if there is one.
    pub fn named(name: &str) -> Option<Theme> {
        match name {
            "dark" => Some(Theme::dark()),
            "light" => Some(Theme::light()),
            "mono" => Some(Theme::mono()),
            _ => None,
        }
    }

    /// `style` as a filled cell: its colour becomes the background (a wide task bar).
    pub fn filled(self, style: Style) -> Style {
        match style.fg {
            Some(c) if self.name != "mono" => {
                let text = if self.name == "light" {
                    Color::White
                } else {
                    Color::Black
                };
                Style::new().fg(text).bg(c)
            }
            _ => style.add_modifier(Modifier::REVERSED),
        }
    }

    /// A badge: bold text on the title colour.
    pub fn badge(self) -> Style {
        self.title.add_modifier(Modifier::BOLD)
    }
}
