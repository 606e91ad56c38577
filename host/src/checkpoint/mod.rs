//! Checkpoints: consistent snapshots of a running job (Chandy-Lamport style
//! barriers, as in Carbone et al. 2015), their storage, and restoring from them.

/// The state an operator hands to a snapshot, and gets back on restore.
///
/// Keyed entries are redistributed by key group when a job resumes at another
/// parallelism; items (source splits, pending sink files) are spread round
/// robin over the new subtasks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OperatorState {
    /// `(key, the operator's encoding of that key's state)`.
    pub keyed: Vec<(Vec<u8>, Vec<u8>)>,
    /// Operator-wide entries, not tied to a key.
    pub items: Vec<Vec<u8>>,
}

impl OperatorState {
    /// Whether there is nothing to store.
    pub fn is_empty(&self) -> bool {
        self.keyed.is_empty() && self.items.is_empty()
    }
}
