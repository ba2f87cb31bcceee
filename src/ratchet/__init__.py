"""ratchet: local-first MLOps that only lets model quality move one way.

The package root stays import-light; the capabilities live in subpackages
(`ratchet.metadata`, `ratchet.artifacts`, `ratchet.tracking`, ...).
"""

__version__ = "0.1.0"
