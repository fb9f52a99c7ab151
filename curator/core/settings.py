"""Typed application arguments: what `build_app(args)` receives from the serve config `args:`.

These are the values fixed for the life of a deployment (limits, where the policy lives, which
URL hosts may be fetched). Cluster numbers (replicas, CPUs) live only in the serve config YAML.
Unsafe values fail fast at build time, before any replica starts.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from curator.core.admission import AdmissionSettings
from models.runtime.profiles import DEFAULT_MAX_BATCH
from models.runtime.request import RuntimeRequest
from rules.loader import POLICY_DIR

if TYPE_CHECKING:
    from models.decode import DecodeLimits

DEFAULT_POLICY_DIR = POLICY_DIR
# Decisions and outboxes of a local deployment; clusters point `store.url` at PostgreSQL.
DEFAULT_DATA_DIR = Path("~/.local/share/curator")


class InputLimits(BaseModel):
    """Limits that keep one request from hurting the service."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_request_bytes: int = Field(64 * 2**20, gt=0, le=512 * 2**20,
                                   description="Whole HTTP body, bytes (base64 inflates by 4/3)")
    max_images_per_listing: int = Field(32, gt=0, le=256)
    max_image_bytes: int = Field(25 * 2**20, gt=0, description="One encoded image, bytes")
    max_image_pixels: int = Field(50_000_000, gt=0, le=400_000_000,
                                  description="width*height; guards against decompression bombs")
    # Decoding working memory (width x height x the bytes per pixel of the file's mode, read from
    # each header: models.decode) that one replica holds at once, bytes. A Preprocess replica
    # decodes only while the images in hand fit; an image over it alone is that image's
    # `too_many_pixels`, and a listing whose images add up to more is refused whole (413
    # listing_too_large) before any is decoded. None: a quarter of the replica's memory
    # (models.decode_budget.default_decode_budget).
    decode_memory_bytes: int | None = Field(None, ge=16 * 2**20, le=2**40)
    # Seconds an image may wait for room in that budget before it is answered `decode_busy`
    # (that image only; the client may retry it): well under the HTTP request timeout, so a
    # replica flooded with large images answers late ones instead of holding them.
    decode_wait_s: float = Field(10.0, gt=0, le=120)

    def decode_budget(self, replica_memory: float | None = None) -> int:
        """`decode_memory_bytes`, else the default for a replica with that much memory (None:
        the host's)."""
        from models.decode_budget import default_decode_budget

        return self.decode_memory_bytes or default_decode_budget(replica_memory)

    def decode_limits(self, replica_memory: float | None = None) -> DecodeLimits:
        """What the decoder of a replica with that much memory accepts."""
        from models.decode import DecodeLimits

        return DecodeLimits(max_bytes=self.max_image_bytes, max_pixels=self.max_image_pixels,
                            max_decode_bytes=self.decode_budget(replica_memory))


class UrlFetchSettings(BaseModel):
    """How `images[].url` is fetched. Private and loopback targets are refused unless listed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(5.0, gt=0, le=60)
    max_redirects: int = Field(3, ge=0, le=10)
    # Hosts or networks (CIDR) that may be fetched even though they are private or loopback:
    # for tests and for an internal image CDN. Empty in production unless deliberately set.
    allow_private: tuple[str, ...] = ()

    @field_validator("allow_private")
    @classmethod
    def _networks_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                if not entry or "/" in entry or " " in entry:
                    raise ValueError(
                        f"allow_private entry {entry!r} is neither host nor CIDR"
                    ) from exc
        return value


class ModelStageSettings(BaseModel):
    """What the model stages load at start-up (changing these means new replicas)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Detectors the AttributeExtractor runs; remove one to switch that model off (its rules then
    # report "not evaluated"). Known: text, objects (COCO objects and bodies), faces_hands,
    # nudity (NudeNet: AGPL-3.0 weights; remove it where those may not ship).
    extractor_models: tuple[str, ...] = ("text", "objects", "faces_hands", "nudity")
    scorer_card: str = "card-v1"
    # More QualityScorer deployments, one per card, for experiment variants to route to.
    extra_scorer_cards: tuple[str, ...] = ()
    # The largest batch a replica's runtimes are built for (a TensorRT profile's max). The live
    # max_batch_size in each deployment's user_config must stay at or below it.
    max_batch_size_limit: int = Field(DEFAULT_MAX_BATCH, ge=1, le=256)
    runtime: Literal["auto", "tensorrt", "onnxruntime"] = "auto"
    # Intra-op threads of each CPU session (ONNX Runtime or OpenVINO); 0: one per core. Replicas
    # that share a host's cores do more per CPU second with fewer (benchmarks/README.md).
    cpu_threads: int = Field(0, ge=0, le=256)
    # What runs on the CPU (models/runtime/select.py): "auto" takes bf16 in OpenVINO for the
    # models whose verdicts hold in it, where the host has native bf16 (AMX or AVX512-BF16),
    # else FP32 in ONNX Runtime; bf16/int8/fp32 force one for every model (int8: a model's INT8
    # sibling, cheaper but with less recall).
    cpu_precision: Literal["auto", "fp32", "int8", "bf16"] = "auto"
    # Threads an extractor replica runs the detectors of one batch on, side by side
    # (models/extractor.py): with 2, a lone image takes two cores of an idle host. 1 in process,
    # where the in-process limit is measured listing by listing on one thread per model.
    detector_threads: int = Field(1, ge=1, le=16)

    def runtime_request(self) -> RuntimeRequest:
        """What every model of the stages asks of its runtime (models/runtime/request.py)."""
        return RuntimeRequest(self.max_batch_size_limit, self.runtime, self.cpu_threads,
                              self.cpu_precision)

    @field_validator("extractor_models")
    @classmethod
    def _known_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from models.extractor import check_model_names

        check_model_names(value)
        return value

    @field_validator("scorer_card")
    @classmethod
    def _known_card(cls, value: str) -> str:
        from models import scorer_cards

        if value not in scorer_cards.names():
            raise ValueError(f"unknown scorer card {value!r}; known: {scorer_cards.names()}")
        return value

    @field_validator("extra_scorer_cards")
    @classmethod
    def _known_cards(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for card in value:
            cls._known_card(card)
        return value

    @property
    def scorer_cards(self) -> tuple[str, ...]:
        """Every deployed card, the default first."""
        return (self.scorer_card, *(c for c in self.extra_scorer_cards if c != self.scorer_card))


class StoreSettings(BaseModel):
    """Where decisions and outcomes go (experiments.store), through a local outbox per replica."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # SQLite (embedded, one host) or postgresql+psycopg://... (clusters: every replica writes).
    url: str = f"sqlite:///{DEFAULT_DATA_DIR.expanduser()}/decisions.db"
    # Outbox files, one per ingress replica; on local disk of the node the replica runs on.
    outbox_dir: Path = Field(DEFAULT_DATA_DIR / "outbox", validate_default=True)

    @field_validator("outbox_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()


class ReviewSettings(BaseModel):
    """The review queue (issue 15): what the ingress keeps of decisions a person must look at."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Off: no thumbnails are kept and the /review pages answer 404 (reviews already stored stay).
    enabled: bool = True
    # Days a thumbnail is kept; the outbox's drain thread purges older ones by itself.
    retention_days: float = Field(7.0, gt=0, le=365)
    # Also queue images whose fix was accepted, for a business that wants fixes confirmed by a
    # person before they go live; off, only `action: review` is queued.
    confirm_fixes: bool = False
    # Longest side of a thumbnail, px (JPEG; ~15-20 KB at 384).
    thumbnail_px: int = Field(384, ge=64, le=384)
    # How long a reviewer's login lasts, hours.
    session_hours: float = Field(12.0, gt=0, le=24 * 7)
    # How often each replica's outbox thread runs the purge, seconds.
    purge_interval_s: float = Field(3600.0, ge=10, le=86_400)


class CuratorAppArgs(BaseModel):
    """Arguments of `graphs.online:build_app`, as written under `args:` in the serve config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The policy set a replica starts with; `policies` in the ingress's user_config replaces it
    # live (see CuratorConfig).
    policy_dir: Path = DEFAULT_POLICY_DIR
    limits: InputLimits = InputLimits()
    url_fetch: UrlFetchSettings = UrlFetchSettings()
    # None: a technical-only graph (Preprocess alone; quality from scorer card v0), the cheap
    # pre-screening tier; its rules over model attributes report "not evaluated".
    models: ModelStageSettings | None = ModelStageSettings()
    store: StoreSettings = StoreSettings()
    # SHA-256 (hex) of the API keys that may post outcomes; keys themselves never sit in a
    # config. Empty: POST /v1/outcomes is off (503).
    outcome_key_sha256: tuple[str, ...] = ()
    # How often the canary controller looks at its experiments, seconds.
    canary_interval_s: float = Field(30.0, gt=0)
    review: ReviewSettings = ReviewSettings()

    @field_validator("outcome_key_sha256")
    @classmethod
    def _hex_digests(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("outcome_key_sha256 holds lowercase hex SHA-256 digests "
                                 "(sha256sum of the key), not keys")
        return value

    @field_validator("policy_dir")
    @classmethod
    def _policies_exist(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"policy directory {value} does not exist")
        return value.resolve()


class CuratorConfig(BaseModel):
    """The ingress's user_config: what may change while replicas run (`serve deploy` of an
    updated config calls reconfigure(), no restart)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # A whole policy set, {file name: YAML text}, as `curator rules publish` writes it. Texts
    # rather than a path, so the set reaches replicas on every node of a cluster. None: the
    # files under CuratorAppArgs.policy_dir.
    policies: dict[str, str] | None = None
    # Other policy sets by name, for experiment variants (`policy_set: name`).
    policy_sets: dict[str, dict[str, str]] = {}
    # Experiment definitions (experiments.config), at most one running.
    experiments: list[dict[str, Any]] = []
    # Load shedding on the assess endpoints (curator.core.admission): tunable without a restart.
    admission: AdmissionSettings = AdmissionSettings()
