//! poolscope: watch a worker pool work.
//!
//! Data flows one way: a [`pool`] runs tasks and emits [`event::PoolEvent`]s, the
//! [`coordinator`] submits and awaits them (the seed's `run_blocking_tasks`), and consumers
//! such as the [`seed_log`] turn the events into what the user sees.

pub mod app;
pub mod config;
pub mod coordinator;
pub mod dashboard;
pub mod error;
pub mod event;
pub mod floor;
pub mod model;
pub mod monitor;
pub mod pool;
pub mod reorder;
pub mod sample;
pub mod scenario;
pub mod seed_log;
pub mod source;
pub mod sys;
pub mod task_names;
pub mod term;
pub mod trace;
pub mod view;
pub mod workload;
