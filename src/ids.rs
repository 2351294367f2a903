//! The ids that events, samples and the model share; at the bottom of the module graph so
//! that each of them can name a worker without importing the others.

use serde::{Deserialize, Serialize};

/// Identifies a task within a run; task `i` computes `blocks(i)`.
pub type TaskId = u64;

/// A worker slot, numbered in spawn order from 0; a replacement worker gets a fresh id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WorkerId(pub u32);
