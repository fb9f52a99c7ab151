"""Deployment manifests: KubeRay (kuberay/), Grafana (grafana/)."""
