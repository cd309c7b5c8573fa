//! A forge as the bridge uses it: a client and the permissions it was told lately. Apart from
//! the route so the bridge's state can hold one without knowing the routes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openclaw_common::forge::github::{GitHub, GitHubConfig};
use openclaw_common::forge::gitlab::{GitLab, GitLabConfig};
use openclaw_common::forge::{Forge, ForgeError, ForgeRepo, Permission};

/// How long a user's permission is remembered.
const PERMISSION_TTL: Duration = Duration::from_secs(60);

/// A forge as the bridge uses it: the client it answers and checks permissions with, and the
/// permissions it was told lately.
pub struct Door<F> {
    pub client: F,
    /// `github` or `gitlab`: what task origins name.
    pub name: &'static str,
    permissions: Mutex<HashMap<(ForgeRepo, String), (Permission, Instant)>>,
}

pub type GitHubDoor = Door<GitHub>;
pub type GitLabDoor = Door<GitLab>;

impl Door<GitHub> {
    pub fn github(config: Arc<GitHubConfig>) -> Result<Self, ForgeError> {
        Ok(Self::new(GitHub::new(config)?, "github"))
    }
}

impl Door<GitLab> {
    pub fn gitlab(config: Arc<GitLabConfig>) -> Result<Self, ForgeError> {
        Ok(Self::new(GitLab::new(config)?, "gitlab"))
    }
}

impl<F: Forge> Door<F> {
    fn new(client: F, name: &'static str) -> Self {
        Self {
            client,
            name,
            permissions: Mutex::default(),
        }
    }

    /// Whether `user` may write to `repo` (so may ask an agent to), remembered briefly.
    pub(super) async fn may_write(&self, repo: &ForgeRepo, user: &str) -> Result<bool, ForgeError> {
        let key = (repo.clone(), user.to_ascii_lowercase());
        if let Ok(cache) = self.permissions.lock()
            && let Some((permission, at)) = cache.get(&key)
            && at.elapsed() < PERMISSION_TTL
        {
            return Ok(*permission == Permission::Write);
        }
        let permission = match self.client.permission(repo, user).await {
            Ok(p) => p,
            // Not a collaborator at all.
            Err(ForgeError::Refused { status: 404, .. }) => Permission::Read,
            Err(e) => return Err(e),
        };
        if let Ok(mut cache) = self.permissions.lock() {
            cache.retain(|_, (_, at)| at.elapsed() < PERMISSION_TTL);
            cache.insert(key, (permission, Instant::now()));
        }
        Ok(permission == Permission::Write)
    }
}
