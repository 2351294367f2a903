//! A `tracing_subscriber::Layer` that reports chosen spans as tasks (feature `tracing`).
//!
//! A chosen span is a task from the first time it is entered (its lane is the thread that
//! entered it) to its last exit before it closes; its CPU time is what the entering threads
//! spent while inside it. Chosen are:
//!
//! - tokio's `spawn_blocking` tasks: tokio opens a `runtime.spawn` span with
//!   `kind = "blocking"` around each when it is built with `RUSTFLAGS="--cfg tokio_unstable"`
//!   and its `tracing` feature; the blocking pool's threads are then the lanes;
//! - spans whose name you list ([`PoolscopeLayer::with_spans`]) or that your own test picks
//!   ([`PoolscopeLayer::with_filter`]).
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! let layer = poolscope_probe::layer::PoolscopeLayer::new().with_spans(["resize"]);
//! tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer)).ok();
//! ```

use std::fmt;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::sys::{gettid, mono_ns, thread_cpu_ns};
use crate::{Running, enabled, end_line};

/// Picks spans by their metadata.
type Filter = Arc<dyn Fn(&Metadata<'_>) -> bool + Send + Sync>;

/// Reports chosen spans to poolscope as tasks; see the [module](self) documentation.
#[derive(Clone, Default)]
pub struct PoolscopeLayer {
    names: Vec<String>,
    filter: Option<Filter>,
}

impl fmt::Debug for PoolscopeLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolscopeLayer")
            .field("names", &self.names)
            .field("filter", &self.filter.is_some())
            .finish()
    }
}

impl PoolscopeLayer {
    /// A layer that reports tokio's `spawn_blocking` tasks (under `--cfg tokio_unstable`).
    pub fn new() -> Self {
        PoolscopeLayer::default()
    }

    /// Also reports every span with one of these names.
    #[must_use]
    pub fn with_spans<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.names.extend(names.into_iter().map(Into::into));
        self
    }

    /// Also reports every span for which `pick` says true.
    #[must_use]
    pub fn with_filter(
        mut self,
        pick: impl Fn(&Metadata<'_>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.filter = Some(Arc::new(pick));
        self
    }

    /// The task name for a new span, if it is one to report, and whether it is one of
    /// tokio's blocking tasks.
    fn chosen(&self, attrs: &Attributes<'_>) -> Option<(String, bool)> {
        let meta = attrs.metadata();
        if meta.name() == "runtime.spawn" {
            let mut fields = TokioFields::default();
            attrs.record(&mut fields);
            // tokio starts its own worker threads through the blocking pool too: those run
            // the runtime for its whole life and are not the program's tasks.
            let internal = fields
                .func
                .as_deref()
                .is_some_and(|f| f.starts_with("tokio::"));
            if fields.kind.as_deref() == Some("blocking") && !internal {
                let name = fields.name.filter(|n| !n.is_empty());
                return Some((name.unwrap_or_else(|| "spawn_blocking".into()), true));
            }
        }
        let named = self.names.iter().any(|n| n == meta.name());
        (named || self.filter.as_ref().is_some_and(|pick| pick(meta)))
            .then(|| (meta.name().into(), false))
    }
}

/// The fields of tokio's `runtime.spawn` span that say what it is.
#[derive(Default)]
struct TokioFields {
    kind: Option<String>,
    name: Option<String>,
    /// The type name of the closure (`fn`).
    func: Option<String>,
}

impl Visit for TokioFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, || format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, || value.into());
    }
}

impl TokioFields {
    fn set(&mut self, field: &Field, value: impl FnOnce() -> String) {
        match field.name() {
            "kind" => self.kind = Some(value()),
            "task.name" => self.name = Some(value()),
            "fn" => self.func = Some(value()),
            _ => {}
        }
    }
}

/// A chosen span's task, kept in the span's extensions.
struct SpanTask {
    name: String,
    /// tokio's blocking task ends when its one poll returns: the span is entered once more
    /// only to drop the finished future, later, which is not the task's work.
    ends_at_first_exit: bool,
    ended: bool,
    /// Set at the first enter.
    id: Option<String>,
    /// The thread inside it now and its CPU clock at the enter.
    inside: Option<(i64, Option<u64>)>,
    cpu_ns: Option<u64>,
    last_exit_ns: u64,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for PoolscopeLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !enabled() {
            return;
        }
        let (Some((name, blocking)), Some(span)) = (self.chosen(attrs), ctx.span(id)) else {
            return;
        };
        span.extensions_mut().insert(SpanTask {
            name,
            ends_at_first_exit: blocking,
            ended: false,
            id: None,
            inside: None,
            cpu_ns: None,
            last_exit_ns: 0,
        });
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(task) = ext.get_mut::<SpanTask>().filter(|t| !t.ended) else {
            return;
        };
        if task.id.is_none() {
            task.id = Some(Running::start(&task.name).id);
        }
        if task.inside.is_none() {
            task.inside = Some((gettid(), thread_cpu_ns()));
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(task) = ext.get_mut::<SpanTask>().filter(|t| !t.ended) else {
            return;
        };
        task.last_exit_ns = mono_ns();
        task.ended = task.ends_at_first_exit;
        // Only the thread that entered can read its own CPU clock for the stretch.
        if let Some((tid, cpu0)) = task.inside
            && tid == gettid()
        {
            task.inside = None;
            if let (Some(c0), Some(c1)) = (cpu0, thread_cpu_ns()) {
                task.cpu_ns = Some(task.cpu_ns.unwrap_or(0) + c1.saturating_sub(c0));
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let mut ext = span.extensions_mut();
        let Some(task) = ext.remove::<SpanTask>() else {
            return;
        };
        if let Some(task_id) = task.id {
            let end = if task.last_exit_ns == 0 {
                mono_ns()
            } else {
                task.last_exit_ns
            };
            end_line(&task_id, end, task.cpu_ns, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn spans_are_chosen_by_name_filter_or_as_tokio_blocking_tasks() {
        use std::sync::Mutex;
        /// A layer beside ours that records what ours chose, through its `chosen`.
        struct Probe(PoolscopeLayer, Arc<Mutex<Vec<String>>>);
        impl<S: Subscriber> Layer<S> for Probe {
            fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
                if let Some((name, _)) = self.0.chosen(attrs) {
                    self.1.lock().unwrap().push(name);
                }
            }
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let ours = PoolscopeLayer::new()
            .with_spans(["resize"])
            .with_filter(|m| m.name().starts_with("job."));
        let subscriber = tracing_subscriber::registry().with(Probe(ours, record));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("resize").in_scope(|| {});
            tracing::info_span!("job.fetch").in_scope(|| {});
            tracing::info_span!("other").in_scope(|| {});
            tracing::trace_span!("runtime.spawn", kind = %"blocking", task.name = %"")
                .in_scope(|| {});
            tracing::trace_span!("runtime.spawn", kind = %"blocking", task.name = %"load")
                .in_scope(|| {});
            tracing::trace_span!("runtime.spawn", kind = %"task", task.name = %"").in_scope(|| {});
            let worker = "tokio::runtime::scheduler::multi_thread::worker::Launch::launch";
            let (kind, none) = ("blocking", "");
            tracing::trace_span!("runtime.spawn", %kind, task.name = %none, "fn" = %worker)
                .in_scope(|| {});
            tracing::trace_span!("runtime.spawn", %kind, task.name = %none, "fn" = %"app::load")
                .in_scope(|| {});
        });
        assert_eq!(
            *seen.lock().unwrap(),
            [
                "resize",
                "job.fetch",
                "spawn_blocking",
                "load",
                "spawn_blocking"
            ]
        );
    }
}
