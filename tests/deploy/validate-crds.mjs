// Validates the custom resources of rendered manifests (KEDA ScaledJob, Karpenter NodePool and
// EC2NodeClass) against the schemas the @kubernetes-models packages carry; core kinds are
// left to kubernetes-validate. usage: node validate-crds.mjs FILE... (multi-document YAML)
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import { ScaledJob } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { NodePool } from "@kubernetes-models/karpenter/karpenter.sh/v1";
import { EC2NodeClass } from "@kubernetes-models/karpenter/karpenter.k8s.aws/v1";

const models = {
  "keda.sh/v1alpha1/ScaledJob": ScaledJob,
  "karpenter.sh/v1/NodePool": NodePool,
  "karpenter.k8s.aws/v1/EC2NodeClass": EC2NodeClass,
};
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, "utf8"))) {
    if (!doc) continue;
    const key = `${doc.apiVersion}/${doc.kind}`;
    const Model = models[key];
    if (!Model) {
      if (!doc.apiVersion.includes(".") || doc.apiVersion.endsWith(".k8s.io/v1") || doc.apiVersion.startsWith("apps/") || doc.apiVersion.startsWith("batch/")) continue;
      console.error(`${file}: ${key} is a custom resource with no schema here`);
      process.exit(1);
    }
    try {
      new Model(doc).validate();
    } catch (e) {
      console.error(`${file}: ${key} ${doc.metadata?.name}: ${e.message}`);
      process.exit(1);
    }
    checked++;
  }
}
console.log(`custom resources valid: ${checked}`);
