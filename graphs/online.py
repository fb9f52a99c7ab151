"""The online graph: one readable composition, built from typed arguments.

    HTTP -> Curator (ingress: input safety, rules, selection)
              per image: Preprocess -> AttributeExtractor -> QualityScorer

Used by the serve config (`import_path: graphs.online:build_app`), by `curator serve` and by
the integration tests, so all three run the same graph.
"""

from __future__ import annotations

from ray.serve import Application

from curator.settings import CuratorAppArgs
from deployments.curator import Curator
from deployments.extractor import AttributeExtractor
from deployments.preprocess import Preprocess
from deployments.scorer import QualityScorer


def build_app(args: CuratorAppArgs) -> Application:
    # Serve validates `args:` of the config into CuratorAppArgs because of the annotation;
    # model_validate also accepts a dict for direct Python callers.
    args = CuratorAppArgs.model_validate(args)
    # `.bind` is added by @serve.deployment at run time and is not visible to mypy.
    stages = args.models
    preprocess = Preprocess.bind(  # type: ignore[attr-defined]
        max_image_bytes=args.limits.max_image_bytes,
        max_image_pixels=args.limits.max_image_pixels,
        emit_model_inputs=stages is not None,
    )
    if stages is None:
        return Curator.bind(preprocess, None, None, args.model_dump(mode="json"))  # type: ignore[attr-defined]
    extractor = AttributeExtractor.bind(  # type: ignore[attr-defined]
        list(stages.extractor_models), stages.max_batch_size_limit, stages.runtime
    )
    scorer = QualityScorer.bind(stages.scorer_card, stages.max_batch_size_limit)  # type: ignore[attr-defined]
    return Curator.bind(preprocess, extractor, scorer, args.model_dump(mode="json"))  # type: ignore[attr-defined]
