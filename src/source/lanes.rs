//! Lane numbering shared by the readers: a key the format knows a lane by → a [`LaneId`].

use std::collections::HashMap;
use std::hash::Hash;

use super::{LaneId, LaneInfo, MAX_LANES};

/// Lanes in order of first appearance, found by a format-specific key.
pub(crate) struct LaneTable<K> {
    ids: HashMap<K, LaneId>,
    infos: Vec<LaneInfo>,
}

impl<K: Hash + Eq> LaneTable<K> {
    pub(crate) fn new() -> Self {
        LaneTable {
            ids: HashMap::new(),
            infos: Vec::new(),
        }
    }

    /// The lane for `key`, adding it with `make()` if new (`true` then). `None` once
    /// [`MAX_LANES`] lanes exist: the caller rejects the record.
    pub(crate) fn get_or_add(
        &mut self,
        key: K,
        make: impl FnOnce() -> LaneInfo,
    ) -> Option<(LaneId, bool)> {
        if let Some(&id) = self.ids.get(&key) {
            return Some((id, false));
        }
        if self.infos.len() >= MAX_LANES {
            return None;
        }
        let id = LaneId(u32::try_from(self.infos.len()).ok()?);
        self.infos.push(make());
        self.ids.insert(key, id);
        Some((id, true))
    }

    /// The lane already known for `key`.
    pub(crate) fn get(&self, key: &K) -> Option<LaneId> {
        self.ids.get(key).copied()
    }

    /// Who lane `id` is.
    pub(crate) fn info(&self, id: LaneId) -> &LaneInfo {
        &self.infos[id.0 as usize]
    }

    /// Replaces what is known of lane `id`.
    pub(crate) fn set_info(&mut self, id: LaneId, info: LaneInfo) {
        self.infos[id.0 as usize] = info;
    }
}
