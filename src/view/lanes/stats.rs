//! A lane's resource figures: CPU %, and on wide screens memory and a CPU sparkline.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

use crate::model::Lane;
use crate::view::{Theme, fmt_bytes};

/// A lane's CPU %, and on wide screens its memory and CPU sparkline. A lane whose worker
/// has exited shows, greyed, its mean CPU over its life and its last memory reading.
pub(super) fn stats_of(lane: &Lane, wide: bool, theme: &Theme) -> Line<'static> {
    let dim = theme.dim;
    let exited = lane.exited.is_some();
    let cpu = if exited {
        let n = lane.cpu_history.len();
        (n > 0).then(|| lane.cpu_history.iter().sum::<f32>() / n as f32)
    } else {
        lane.cpu_pct
    };
    let cpu = match cpu {
        Some(c) => {
            let style = match c {
                _ if exited => dim,
                c if c >= 50.0 => theme.cpu,
                _ => Style::new(),
            };
            Span::styled(format!("{:>3.0}%", c.clamp(0.0, 999.0)), style)
        }
        None => Span::styled("   –", dim),
    };
    let mut spans = vec![cpu];
    if wide {
        let mem = match lane.rss {
            Some(b) => fmt_bytes(b),
            None if matches!(lane.label, crate::event::WorkerLabel::Thread { .. }) => {
                "shared".to_string()
            }
            None => "–".to_string(),
        };
        spans.push(Span::styled(format!(" {mem:>9}"), dim));
        spans.push(Span::raw(" "));
        let spark = if exited { dim } else { theme.cpu };
        spans.push(Span::styled(sparkline(&lane.cpu_history, 8), spark));
    }
    Line::from(spans)
}

/// The last `width` CPU samples as block characters, right-aligned.
fn sparkline(history: &std::collections::VecDeque<f32>, width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let skip = history.len().saturating_sub(width);
    let bars: String = history
        .iter()
        .skip(skip)
        .map(|&c| BARS[((c.clamp(0.0, 100.0) / 100.0 * 7.0).round()) as usize])
        .collect();
    format!("{bars:>width$}")
}
