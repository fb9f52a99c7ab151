"""The bottom layer: what every other layer shares and may import — typed errors, the id
patterns, the attribute vocabulary, the registry, the HTTP contract's models. Imports no
first-party code (import-linter checks it)."""
