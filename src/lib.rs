//! poolscope: watch a worker pool work.
//!
//! "The example" throughout is the experiment poolscope brings to life: `PyMOTW`'s
//! `asyncio_executor_thread.py` / `asyncio_executor_process.py`, whose `run_blocking_tasks`
//! hands six `blocks(n)` calls to a `ThreadPoolExecutor` or `ProcessPoolExecutor` through
//! `loop.run_in_executor` and logs what each worker does (see the README).
//!
//! Data flows one way: a [`pool`] runs tasks and emits [`event::PoolEvent`]s, the
//! [`coordinator`] submits and awaits them (the example's `run_blocking_tasks`), and consumers
//! such as the [`example_log`] turn the events into what the user sees.

pub mod app;
pub mod baseline;
pub mod config;
pub mod config_file;
pub mod coordinator;
pub mod dashboard;
pub mod error;
pub mod event;
pub mod example_log;
pub mod explore;
pub mod ids;
pub mod keys;
pub mod model;
pub mod monitor;
pub mod output;
pub mod outside_text;
pub mod pool;
pub mod reorder;
pub mod sample;
pub mod scenario;
pub(crate) mod settings;
pub mod source;
pub mod sys;
pub mod task_log;
pub(crate) mod task_names;
pub mod term;
pub mod theme;
pub mod trace;
pub mod units;
pub mod view;
pub mod view_state;
pub mod workload;
