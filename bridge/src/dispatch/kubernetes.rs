//! `kubernetes` dispatch: the bridge creates a worker Job per waiting task, bounded by
//! `OPENCLAW_MAX_JOBS`, from a Job template per agent (`job.rs`: image, resources, arm64 +
//! spot node selector, tolerations, deadlines, security context). Jobs it created are
//! labelled `app.kubernetes.io/managed-by=openclaw-bridge` and `openclaw.dev/agent=<agent>`;
//! a Job counts as running until it has a `Complete` or `Failed` condition. This file is the
//! [`Launcher`]: the API calls, and reading the worker pods into start outcomes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams};
use openclaw_common::ids::AgentName;

use super::feedback::{StartOutcome, exited_at_start};
use super::job::{
    AGENT_LABEL, KubeDispatchError, MANAGED_BY, PodReport, diagnose, finished, job_template,
    worker_job,
};
use super::{Fleet, Launcher, StartFailure};
use crate::config::{BridgeConfig, KubernetesDispatchConfig};
use crate::metrics::Metrics;

/// The Jobs and pods of the bridge's namespace.
struct Apis {
    jobs: Api<Job>,
    pods: Api<Pod>,
}

/// Creates worker Jobs and reads them and their pods.
pub struct KubernetesLauncher {
    config: Arc<BridgeConfig>,
    /// Each agent's Job template, read once at start.
    templates: HashMap<AgentName, Job>,
    /// `None` until a client could be made (retried every pass).
    apis: Option<Apis>,
    /// Pods whose end was already counted (by name), so each counts once.
    counted: HashSet<String>,
    /// Where pods that cannot start are counted, by kind.
    metrics: Arc<Metrics>,
}

impl KubernetesLauncher {
    /// Reads every agent's Job template; a broken one is an error (dispatch stays off, loudly,
    /// instead of failing every pass).
    pub fn new(
        config: Arc<BridgeConfig>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, KubeDispatchError> {
        let mut templates = HashMap::new();
        for agent in config.agents.names() {
            templates.insert(agent.clone(), job_template(&config.kubernetes, agent)?);
        }
        Ok(Self {
            config,
            templates,
            apis: None,
            counted: HashSet::new(),
            metrics,
        })
    }

    async fn apis(&mut self) -> Result<&Apis, String> {
        if self.apis.is_none() {
            let client = connect(&self.config.kubernetes)
                .await
                .map_err(|e| format!("the bridge cannot reach the Kubernetes API: {e}"))?;
            let namespace = &self.config.kubernetes.namespace;
            self.apis = Some(Apis {
                jobs: Api::namespaced(client.clone(), namespace),
                pods: Api::namespaced(client, namespace),
            });
        }
        self.apis
            .as_ref()
            .ok_or_else(|| "no Kubernetes API client".to_owned())
    }

    /// Each ended worker pod once (a start that failed backs off; one that ran resets the
    /// backoff), and what blocks the others, per agent.
    fn read_pods(
        &mut self,
        pods: &[Pod],
    ) -> (Vec<(AgentName, StartOutcome)>, HashMap<AgentName, String>) {
        let mut ended = Vec::new();
        let mut blocked = HashMap::new();
        // Forget pods that are gone (Jobs are deleted after their TTL).
        let present: HashSet<&str> = pods
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        self.counted
            .retain(|key| present.contains(key.split('/').next().unwrap_or_default()));
        for pod in pods {
            let Some(agent) = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(AGENT_LABEL))
                .and_then(|a| AgentName::parse(a).ok())
            else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            let outcome = match diagnose(pod) {
                PodReport::Fine => continue,
                PodReport::Blocked { reason, label } => {
                    if self.counted.insert(format!("{name}/{label}")) {
                        self.metrics.worker_start_failed(agent.as_str(), label);
                    }
                    blocked.insert(agent, reason);
                    continue;
                }
                PodReport::Succeeded => StartOutcome::TookTask,
                PodReport::Failed(words) => {
                    StartOutcome::Failed(exited_at_start(&agent, &words, "the pod failed"))
                }
                PodReport::NatsUnavailable(words) => {
                    StartOutcome::NatsUnavailable(exited_at_start(&agent, &words, "the pod failed"))
                }
            };
            if self.counted.insert(name) {
                ended.push((agent, outcome));
            }
        }
        (ended, blocked)
    }
}

impl Launcher for KubernetesLauncher {
    async fn observe(&mut self) -> Result<Fleet, String> {
        let apis = self.apis().await?;
        let params = ListParams::default().labels(MANAGED_BY);
        let jobs = match apis.jobs.list(&params).await {
            Ok(jobs) => jobs,
            Err(e) => {
                // A new client next time: the address may have moved, the token rotated.
                self.apis = None;
                return Err(format!(
                    "the bridge cannot read its worker Jobs: Kubernetes API: {e}"
                ));
            }
        };
        let pods = match apis.pods.list(&params).await {
            Ok(list) => Some(list.items),
            // Without pod access (an older Role) dispatch still works, only blind.
            Err(e) => {
                tracing::debug!(error = %e, "cannot list worker pods");
                None
            }
        };
        let mut running: HashMap<AgentName, usize> = HashMap::new();
        for job in jobs.items.iter().filter(|j| !finished(j)) {
            if let Some(agent) = job
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(AGENT_LABEL))
                .and_then(|a| AgentName::parse(a).ok())
                .filter(|a| self.templates.contains_key(a))
            {
                *running.entry(agent).or_default() += 1;
            }
        }
        let (ended, blocked) = match pods {
            Some(pods) => {
                let (ended, blocked) = self.read_pods(&pods);
                (ended, Some(blocked))
            }
            None => (Vec::new(), None),
        };
        Ok(Fleet {
            running,
            ended,
            blocked,
        })
    }

    async fn launch(
        &mut self,
        agent: &AgentName,
        fetch_wait: Option<std::time::Duration>,
    ) -> Result<String, StartFailure> {
        let template = self
            .templates
            .get(agent)
            .cloned()
            .ok_or_else(|| StartFailure {
                label: "job_refused",
                reason: format!("no Job template for {agent}"),
            })?;
        let job = worker_job(template, agent, &self.config.nats.url, fetch_wait);
        let apis = self.apis().await.map_err(|reason| StartFailure {
            label: "job_refused",
            reason,
        })?;
        let created = apis
            .jobs
            .create(&PostParams::default(), &job)
            .await
            .map_err(|e| StartFailure {
                label: "job_refused",
                reason: format!("the bridge may not create Jobs: {e}"),
            })?;
        Ok(format!(
            "Job {}",
            created.metadata.name.as_deref().unwrap_or("?")
        ))
    }

    /// Ends are read from the pods at each pass.
    async fn changed(&mut self) {
        std::future::pending().await
    }

    /// Jobs outlive the bridge: their workers keep their tasks.
    async fn stop(&mut self) {}
}

/// A client for the configured API server, else the in-cluster or kubeconfig one.
async fn connect(cfg: &KubernetesDispatchConfig) -> Result<kube::Client, KubeDispatchError> {
    let config = match &cfg.api_url {
        Some(url) => kube::Config::new(
            url.parse()
                .map_err(|e| KubeDispatchError::Api(format!("OPENCLAW_KUBE_API_URL: {e}")))?,
        ),
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeDispatchError::Api(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| KubeDispatchError::Api(e.to_string()))
}
