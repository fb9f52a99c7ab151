"""Effectiveness: experiment definitions, assignment, the decision and outcome store, statistics
and the canary controller.

Plain Python (no Ray): the ingress deployment wires it in; reports, simulations and tests use it
directly.
"""
