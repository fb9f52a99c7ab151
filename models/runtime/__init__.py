"""Inference runtimes behind one small interface, chosen at start-up (see `select.py`)."""

from models.runtime.base import InferenceRuntime, RuntimeInfo

__all__ = ["InferenceRuntime", "RuntimeInfo"]
