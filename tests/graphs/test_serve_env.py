"""The local Serve environment: Serve's background work slowed where the operator has not set it."""

from __future__ import annotations

from graphs.serve_env import LOCAL_SERVE_ENV, local_serve_env


def test_defaults_fill_what_the_caller_leaves_unset() -> None:
    env = local_serve_env({"PATH": "/usr/bin"})
    assert env["PATH"] == "/usr/bin"
    assert env["RAY_SERVE_CONTROL_LOOP_INTERVAL_S"] == "0.5"
    assert env["RAY_SERVE_METRICS_EXPORT_INTERVAL_MS"] == "1000"


def test_the_operators_value_wins() -> None:
    env = local_serve_env({"RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.1"})
    assert env["RAY_SERVE_CONTROL_LOOP_INTERVAL_S"] == "0.1"


def test_every_setting_is_one_serve_reads() -> None:
    # A misspelt name would be ignored silently by Ray: each must be a constant Serve reads.
    import inspect

    from ray.serve._private import constants

    source = inspect.getsource(constants)
    for name in LOCAL_SERVE_ENV:
        assert f'"{name}"' in source, name
