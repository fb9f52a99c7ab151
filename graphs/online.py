"""The online graph: one readable composition, built from typed arguments.

    HTTP -> Curator (ingress: input safety, rules, selection, experiments)
              per image: Preprocess -> AttributeExtractor -> QualityScorer (one per card)
            Canary (one replica: moves ramped experiments along, through the store)

Used by the serve config (`import_path: graphs.online:build_app`), by `curator serve` and by
the integration tests, so all three run the same graph.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application, Deployment

from curator.core.settings import CuratorAppArgs
from deployments.canary import Canary
from deployments.curator import Curator
from deployments.extractor import AttributeExtractor
from deployments.preprocess import Preprocess
from deployments.scorer import QualityScorer


def build_app(args: CuratorAppArgs) -> Application:
    return build_graph(args)


def build_graph(
    args: CuratorAppArgs | dict[str, Any], ingress_user_config: dict[str, Any] | None = None
) -> Application:
    """The graph; `ingress_user_config` sets the ingress's user_config where no serve config
    does (Python callers such as the tests: `serve.run(build_graph(args, {...}))`)."""
    # Serve validates `args:` of the config into CuratorAppArgs because of the annotation;
    # model_validate also accepts a dict for direct Python callers.
    args = CuratorAppArgs.model_validate(args)
    ingress = deployment(Curator)
    if ingress_user_config is not None:
        ingress = ingress.options(user_config=ingress_user_config)
    stages = args.models
    preprocess = deployment(Preprocess).bind(
        max_image_bytes=args.limits.max_image_bytes,
        max_image_pixels=args.limits.max_image_pixels,
        emit_model_inputs=stages is not None,
        decode_memory_bytes=args.limits.decode_memory_bytes,
        decode_wait_s=args.limits.decode_wait_s,
    )
    canary = deployment(Canary).bind(args.store.url, args.canary_interval_s)
    app_args = args.model_dump(mode="json")
    if stages is None:
        return ingress.bind(preprocess, None, None, canary, app_args)
    extractor = deployment(AttributeExtractor).bind(
        list(stages.extractor_models), stages.runtime_request(), stages.detector_threads,
    )
    # One QualityScorer deployment per card, so experiment variants can route to either.
    scorers = {
        card: deployment(QualityScorer)
        .options(name=scorer_deployment_name(card, stages.scorer_card))
        .bind(card, stages.max_batch_size_limit)
        for card in stages.scorer_cards
    }
    return ingress.bind(preprocess, extractor, scorers, canary, app_args)


def deployment(decorated: object) -> Deployment:
    """The Serve deployment a `@serve.deployment` class became. mypy still sees the class (it
    has no `.bind`/`.options`); this checks at run time what the type says."""
    if not isinstance(decorated, Deployment):
        raise TypeError(f"{decorated!r} is not a Serve deployment")
    return decorated


def scorer_deployment_name(card: str, default_card: str) -> str:
    """QualityScorer for the default card (the name the serve configs use), else one per card."""
    return "QualityScorer" if card == default_card else f"QualityScorer_{card.replace('-', '_')}"
