//! Who starts workers. `local`: the bridge starts `openclaw-worker` child processes for
//! pending tasks, bounded; `none`: something else (KEDA) does.

use crate::state::AppState;

/// Starts worker processes on this machine while tasks wait, up to `max_workers` at once.
pub struct LocalDispatcher {
    state: AppState,
}

impl LocalDispatcher {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    pub async fn run(self) {
        self.state.shutdown.cancelled().await;
    }
}
