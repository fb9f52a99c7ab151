"""The KubeRay RayService of the cluster graph, generated (generate.py)."""
