"""deploy/k8s: every object of both kustomizations against the Kubernetes 1.30 OpenAPI
schemas (kubernetes-validate, strict: unknown fields are errors), KEDA's objects against
KEDA's CRD models, and the promises the manifests make to each other and to paysync."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import keda
from common import K8S, KUBERNETES_VERSION, Report, load_yaml, load_yaml_documents, tool
from kubernetes_validate import utils as kv  # type: ignore[import-untyped]

from paysync.settings import Settings

KUSTOMIZATIONS = {"roles": K8S, "migrate": K8S / "migrate"}
NOT_RESOURCES = {"kustomization.yaml", "secret.example.yaml"}
ROLES = ("ingest", "worker", "reconciler", "migrate")
Doc = dict[str, Any]


def render(directory: Path, kubectl: str) -> list[Doc]:
    out = subprocess.run(  # noqa: S603
        [kubectl, "kustomize", str(directory)], check=True, capture_output=True, text=True
    ).stdout
    return load_yaml_documents(out)


def schema_problems(doc: Doc) -> list[str]:
    if doc.get("apiVersion", "").startswith("keda.sh/"):
        return keda.validate(doc)
    name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
    try:
        kv.validate(doc, KUBERNETES_VERSION, strict=True)
    except kv.ValidationError as exc:
        return [f"{name}: {'.'.join(str(p) for p in exc.path)}: {exc.message}"]
    except kv.SchemaNotFoundError as exc:
        return [f"{name}: {exc.message}"]
    return []


def with_release_tag(docs: list[Doc]) -> list[Doc]:
    """What kustomize's `images:` does to the pods, for validating the files unrendered."""
    images = load_yaml(K8S / "kustomization.yaml")[0].get("images", [])
    tags = {i["name"]: f"{i['name']}:{i['newTag']}" for i in images}
    for _, _, spec in pods(docs):
        for c in spec["containers"]:
            c["image"] = tags.get(c["image"], c["image"])
    return docs


def raw_documents() -> list[tuple[Path, Doc]]:
    return [
        (path, doc)
        for path in sorted(K8S.rglob("*.yaml"))
        if path.name not in NOT_RESOURCES
        for doc in load_yaml(path)
    ]


def key(doc: Doc) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def pods(docs: list[Doc]) -> list[tuple[str, Doc, Doc]]:
    """(component, pod template metadata, pod spec) of every Deployment and Job."""
    found = []
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            template = doc["spec"]["template"]
            component = template["metadata"]["labels"]["app.kubernetes.io/component"]
            found.append((component, template["metadata"], template["spec"]))
    return found


def pod_problems(component: str, spec: Doc, settings: Settings) -> list[str]:
    problems = []
    pod_ctx = spec.get("securityContext", {})
    if not pod_ctx.get("runAsNonRoot") or pod_ctx.get("seccompProfile", {}).get("type") != (
        "RuntimeDefault"
    ):
        problems.append(f"{component}: pod must run as non-root with seccomp RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{component}: automountServiceAccountToken must be false")
    for c in spec["containers"]:
        ctx = c.get("securityContext", {})
        if not (
            ctx.get("readOnlyRootFilesystem")
            and ctx.get("allowPrivilegeEscalation") is False
            and ctx.get("capabilities", {}).get("drop") == ["ALL"]
        ):
            problems.append(
                f"{component}: container needs a read-only root, no escalation, no caps"
            )
        if c.get("args") != [component] or "command" in c:
            problems.append(f"{component}: args must be [{component!r}] (ENTRYPOINT is paysync)")
        image = c.get("image", "")
        if ":" not in image or image.endswith(":latest"):
            problems.append(f"{component}: image {image!r} must carry a release tag")
        res = c.get("resources", {})
        if not all(
            res.get(k, {}).get(r) for k in ("requests", "limits") for r in ("cpu", "memory")
        ):
            problems.append(f"{component}: cpu and memory requests and limits are required")
        problems += probe_problems(component, c, settings)
    return problems


def probe_problems(component: str, container: Doc, settings: Settings) -> list[str]:
    if component == "migrate":
        return []
    port = settings.ingest.port if component == "ingest" else settings.metrics.port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    problems = []
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = container.get(probe, {}).get("httpGet", {})
        target = named.get(get.get("port"), get.get("port"))
        if get.get("path") != path or target != port:
            problems.append(f"{component}: {probe} must GET {path} on port {port}")
    return problems


def secret_refs(docs: list[Doc]) -> set[str]:
    refs = set()
    for _, _, spec in pods(docs):
        for c in spec["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add(f"{ref['name']}/{ref['key']}")
            refs |= {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
    for doc in docs:
        if doc["kind"] == "TriggerAuthentication":
            refs |= {f"{r['name']}/{r['key']}" for r in doc["spec"].get("secretTargetRef", [])}
    return refs


def wiring_problems(docs: list[Doc], settings: Settings) -> list[str]:
    """Services, PDBs, autoscalers and policies select what exists; no secret is inlined."""
    problems = []
    labels = [meta["labels"] for _, meta, _ in pods(docs)]
    names = {key(d) for d in docs}

    def selects(selector: dict[str, str]) -> bool:
        return any(selector.items() <= lab.items() for lab in labels)

    for doc in docs:
        kind, name = key(doc)
        spec = doc.get("spec", {})
        selector = {
            "Service": spec.get("selector"),
            "PodDisruptionBudget": spec.get("selector", {}).get("matchLabels"),
            "NetworkPolicy": spec.get("podSelector", {}).get("matchLabels"),
        }.get(kind)
        if selector and not selects(selector):
            problems.append(f"{kind}/{name} selects no pod")
        target = spec.get("scaleTargetRef", {}).get("name")
        if target and ("Deployment", target) not in names:
            problems.append(f"{kind}/{name} scales a Deployment that does not exist: {target}")
        if kind == "Secret":
            problems.append(f"Secret/{name} must not be part of the manifests")
    for component, _, spec in pods(docs):
        policies = [
            d
            for d in docs
            if d["kind"] == "NetworkPolicy"
            and d["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component")
            == component
        ]
        if not policies:
            problems.append(f"{component}: no NetworkPolicy of its own")
        port = settings.ingest.port if component == "ingest" else settings.metrics.port
        allowed = {
            p.get("port")
            for d in policies
            for r in d["spec"].get("ingress", [])
            for p in r["ports"]
        }
        if component != "migrate" and port not in allowed:
            problems.append(f"{component}: its NetworkPolicy does not admit scrapes on {port}")
        for c in spec["containers"]:
            if any("value" in e and "URL" in e["name"] for e in c.get("env", [])):
                problems.append(f"{component}: a URL (with its password) is inlined in env")
    return problems


def check(report: Report, settings: Settings) -> None:
    kubectl = tool("kubectl")
    rendered: dict[str, list[Doc]] = {}
    if kubectl is None:
        report.skip("kustomize build", "kubectl is not installed; validating the files as they are")
        rendered["files"] = with_release_tag([doc for _, doc in raw_documents()])
    else:
        for label, directory in KUSTOMIZATIONS.items():
            rendered[label] = render(directory, kubectl)
    for label, docs in rendered.items():
        problems = [p for doc in docs for p in schema_problems(doc)]
        kinds = sorted({d["kind"] for d in docs})
        report.check(
            f"k8s {label}: {len(docs)} objects valid for Kubernetes {KUBERNETES_VERSION} "
            f"(strict) and KEDA {keda.MODELS_VERSION} CRDs ({', '.join(kinds)})",
            problems,
        )
    everything = [d for docs in rendered.values() for d in docs]
    present = {key(d) for d in everything}
    missing = [
        f"{p.relative_to(K8S)}: {key(d)}" for p, d in raw_documents() if key(d) not in present
    ]
    report.check("k8s: every manifest file is part of a kustomization", missing)
    tags = {c["image"] for _, _, s in pods(everything) for c in s["containers"]}
    report.check(
        "k8s: roles and migrate run the same image tag",
        [] if len(tags) == 1 else [f"images differ: {sorted(tags)}"],
    )
    components = {component for component, _, _ in pods(everything)}
    problems = [f"no workload for {r}" for r in ROLES if r not in components]
    problems += [p for c, _, spec in pods(everything) for p in pod_problems(c, spec, settings)]
    report.check("k8s: non-root, read-only, probes on /readyz and /healthz, resources", problems)
    report.check(
        "k8s: selectors, scale targets and NetworkPolicies line up",
        wiring_problems(everything, settings),
    )
    example = (K8S / "secret.example.yaml").read_text(encoding="utf-8")
    undocumented = sorted(r for r in secret_refs(everything) if r.split("/")[-1] not in example)
    report.check("k8s: every Secret key the pods read is in secret.example.yaml", undocumented)
