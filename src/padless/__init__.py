"""padless: cheap training and fast inference for attention encoder-decoder speech models.

Data flows one way (see docs/DESIGN.md):
manifests/shards -> Example stream (padless.data) -> filters + bucketing sampler
(padless.sampling) -> dataset I/O and collation (padless.data) -> model (padless.model)
-> decoding and RTFx (padless.infer).
"""

__version__ = "0.1.0"
