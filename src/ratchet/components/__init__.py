"""KFP components wrapping ratchet's capabilities, and the pipelines assembled from them.

Each component is a thin `@dsl.component` around a plain function of `ratchet`
(imported inside the component body, as KFP requires), so a unit test can call
the function directly and the component compiles to KFP IR for a cluster.
"""
