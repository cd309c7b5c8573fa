//! Pure Job and pod construction and reading for `kubernetes` dispatch: a worker Job from its
//! agent's template, whether a Job has finished, what a worker pod's status says. No API
//! calls here (those are `kubernetes.rs`), so all of it is tested on values.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, Pod};
use openclaw_common::ids::AgentName;

use super::feedback::NATS_UNAVAILABLE_EXIT_CODE;
use crate::config::KubernetesDispatchConfig;

/// The Job template used when no template directory is configured.
const BUILT_IN_TEMPLATE: &str = include_str!("../../../deploy/base/job-templates/default.json");
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=openclaw-bridge";
pub const AGENT_LABEL: &str = "openclaw.dev/agent";

#[derive(Debug, thiserror::Error)]
pub enum KubeDispatchError {
    #[error("Job template {origin}: {message}")]
    Template { origin: String, message: String },
    #[error("Kubernetes API: {0}")]
    Api(String),
}

/// The Job template of `agent`: `<dir>/<agent>.json`, else `<dir>/default.json`, else the
/// built-in one. Its image: the agent's own override (`OPENCLAW_WORKER_IMAGE_<AGENT>`), else
/// for the default template `OPENCLAW_WORKER_IMAGE`, else the template's.
pub fn job_template(
    cfg: &KubernetesDispatchConfig,
    agent: &AgentName,
) -> Result<Job, KubeDispatchError> {
    let (text, origin, own_template) = match &cfg.templates {
        Some(dir) => {
            let own = dir.join(format!("{agent}.json"));
            let own_template = own.is_file();
            let path = if own_template {
                own
            } else {
                dir.join("default.json")
            };
            let text = std::fs::read_to_string(&path).map_err(|e| KubeDispatchError::Template {
                origin: path.display().to_string(),
                message: e.to_string(),
            })?;
            (text, path.display().to_string(), own_template)
        }
        None => (BUILT_IN_TEMPLATE.to_owned(), "built-in".to_owned(), false),
    };
    let mut job: Job = serde_json::from_str(&text).map_err(|e| KubeDispatchError::Template {
        origin: origin.clone(),
        message: e.to_string(),
    })?;
    let container = job
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|p| p.containers.first_mut())
        .ok_or_else(|| KubeDispatchError::Template {
            origin,
            message: "no spec.template.spec.containers[0]".into(),
        })?;
    let agent_image = cfg
        .agent_images
        .iter()
        .find(|(a, _)| a == agent)
        .map(|(_, image)| image);
    if let Some(image) = agent_image.or(cfg.image.as_ref().filter(|_| !own_template)) {
        container.image = Some(image.clone());
    }
    Ok(job)
}

/// The Job for one worker of `agent`: the template, named and labelled, with the worker's
/// agent and NATS address in its environment, and for a worker waiting on orphaned tasks, how
/// long to wait.
pub fn worker_job(
    mut job: Job,
    agent: &AgentName,
    nats_url: &str,
    fetch_wait: Option<Duration>,
) -> Job {
    job.metadata.name = None;
    job.metadata.generate_name = Some(format!("openclaw-worker-{agent}-"));
    let labels = job.metadata.labels.get_or_insert_with(Default::default);
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "openclaw-bridge".into(),
    );
    labels.insert(AGENT_LABEL.into(), agent.to_string());
    if let Some(pod) = job.spec.as_mut().map(|s| &mut s.template) {
        let pod_labels = pod
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default);
        pod_labels.insert(AGENT_LABEL.into(), agent.to_string());
        // So the dispatcher finds its pods (and reads why they do not run).
        pod_labels.insert(
            "app.kubernetes.io/managed-by".into(),
            "openclaw-bridge".into(),
        );
        if let Some(c) = pod.spec.as_mut().and_then(|p| p.containers.first_mut()) {
            let env = c.env.get_or_insert_with(Vec::new);
            env.retain(|e| {
                !["OPENCLAW_AGENT", "NATS_URL", "OPENCLAW_FETCH_WAIT_SECS"]
                    .contains(&e.name.as_str())
            });
            if let Some(wait) = fetch_wait {
                env.push(EnvVar {
                    name: "OPENCLAW_FETCH_WAIT_SECS".into(),
                    value: Some(wait.as_secs().to_string()),
                    ..Default::default()
                });
            }
            env.push(EnvVar {
                name: "OPENCLAW_AGENT".into(),
                value: Some(agent.to_string()),
                ..Default::default()
            });
            env.push(EnvVar {
                name: "NATS_URL".into(),
                value: Some(nats_url.to_owned()),
                ..Default::default()
            });
        }
    }
    job
}

/// Whether a Job has finished (a `Complete` or `Failed` condition that is true).
pub fn finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        })
}

/// What a worker pod says about starting workers, read from its status as the API server
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodReport {
    /// Ended having run (exit 0): workers can start.
    Succeeded,
    /// Ended with an error before or while working; the words are the container's
    /// termination message (the worker writes its fatal error there) or its exit code.
    Failed(String),
    /// Ended with the worker's exit code for NATS trouble (the words as for `Failed`).
    NatsUnavailable(String),
    /// Cannot start: no node takes it, its image cannot be pulled, its configuration is
    /// missing. `label` names the kind for metrics.
    Blocked { reason: String, label: &'static str },
    /// Scheduled and starting or running.
    Fine,
}

/// Reads one worker pod's status.
pub fn diagnose(pod: &Pod) -> PodReport {
    let Some(status) = &pod.status else {
        return PodReport::Fine;
    };
    let containers = status.container_statuses.as_deref().unwrap_or_default();
    for c in containers {
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref())
            && t.exit_code != 0
        {
            let words = t
                .message
                .as_deref()
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    format!(
                        "exit code {}{}",
                        t.exit_code,
                        t.reason
                            .as_deref()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    )
                });
            if t.exit_code == NATS_UNAVAILABLE_EXIT_CODE {
                return PodReport::NatsUnavailable(words);
            }
            return PodReport::Failed(words);
        }
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            let message = w.message.as_deref().unwrap_or("").trim();
            match w.reason.as_deref() {
                Some("ErrImagePull" | "ImagePullBackOff" | "InvalidImageName") => {
                    return PodReport::Blocked {
                        reason: format!("image {} cannot be pulled: {message}", c.image),
                        label: "image",
                    };
                }
                Some(r @ ("CreateContainerConfigError" | "CreateContainerError")) => {
                    return PodReport::Blocked {
                        reason: format!("the worker pod cannot start ({r}): {message}"),
                        label: "pod_config",
                    };
                }
                _ => {}
            }
        }
    }
    match status.phase.as_deref() {
        Some("Succeeded") => return PodReport::Succeeded,
        Some("Failed") => {
            return PodReport::Failed(
                status
                    .message
                    .clone()
                    .or_else(|| status.reason.clone())
                    .unwrap_or_else(|| "the pod failed".into()),
            );
        }
        _ => {}
    }
    let unschedulable = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        });
    if let Some(c) = unschedulable {
        return PodReport::Blocked {
            reason: format!(
                "no node for the worker pod: {}",
                c.message.as_deref().unwrap_or("unschedulable")
            ),
            label: "unschedulable",
        };
    }
    PodReport::Fine
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: i32, message: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "w"},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "worker", "ready": false,
                "restartCount": 0, "image": "w", "imageID": "",
                "state": {"terminated": {"exitCode": code, "message": message}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_worker_that_could_not_reach_nats_is_told_apart_from_one_that_failed() {
        let unreachable = "NATS is unavailable: read status: no answer within 10s";
        assert_eq!(
            diagnose(&exited(1, unreachable)),
            PodReport::NatsUnavailable(unreachable.into())
        );
        assert_eq!(
            diagnose(&exited(2, "invalid configuration: x")),
            PodReport::Failed("invalid configuration: x".into())
        );
    }

    #[test]
    fn the_built_in_template_makes_a_spot_arm64_job_for_the_agent() {
        let cfg = KubernetesDispatchConfig {
            namespace: "ns".into(),
            templates: None,
            image: Some("example/worker:1".into()),
            agent_images: Vec::new(),
            api_url: None,
            max_jobs: 3,
            poll_interval: std::time::Duration::from_secs(1),
        };
        let agent = AgentName::parse("doc-writer").unwrap();
        let job = worker_job(
            job_template(&cfg, &agent).unwrap(),
            &agent,
            "nats://nats:4222",
            None,
        );
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["metadata"]["generateName"], "openclaw-worker-doc-writer-");
        assert_eq!(v["metadata"]["labels"]["openclaw.dev/agent"], "doc-writer");
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["nodeSelector"]["kubernetes.io/arch"], "arm64");
        assert_eq!(pod["nodeSelector"]["karpenter.sh/capacity-type"], "spot");
        assert_eq!(pod["containers"][0]["image"], "example/worker:1");
        let env = pod["containers"][0]["env"].as_array().unwrap();
        assert!(
            env.iter()
                .any(|e| e["name"] == "OPENCLAW_AGENT" && e["value"] == "doc-writer")
        );
        assert!(
            env.iter()
                .any(|e| e["name"] == "NATS_URL" && e["value"] == "nats://nats:4222")
        );
        assert_eq!(
            v["spec"]["backoffLimit"], 0,
            "JetStream redelivers; Kubernetes must not retry too"
        );
    }
}
