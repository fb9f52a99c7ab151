"""The online graph: one readable composition, built from typed arguments.

    HTTP -> Curator (ingress: rules, selection) -> Preprocess (decode, measure)

Used by the serve config (`import_path: graphs.online:build_app`), by `curator serve` and by
the integration tests, so all three run the same graph.
"""

from __future__ import annotations

from ray.serve import Application

from curator.settings import CuratorAppArgs
from deployments.curator import Curator
from deployments.preprocess import Preprocess


def build_app(args: CuratorAppArgs) -> Application:
    # Serve validates `args:` of the config into CuratorAppArgs because of the annotation;
    # model_validate also accepts a dict for direct Python callers.
    args = CuratorAppArgs.model_validate(args)
    preprocess = Preprocess.bind(
        max_image_bytes=args.limits.max_image_bytes,
        max_image_pixels=args.limits.max_image_pixels,
    )
    return Curator.bind(preprocess, args.model_dump(mode="json"))
