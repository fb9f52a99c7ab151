"""The assessment core: one listing from measured images to the answer (rules, fixes,
selection), the stage stack that measures them, the request checks, admission and settings.
Plain Python, no Ray: Serve, Ray Data, `curator assess` and the tests all run it."""
