"""Sampling engine: length functions, filters, bucket bins and plans, bucket assignment,
batch-size policies, the dynamic bucketing sampler (synchronized across ranks, concurrent,
exactly resumable), and padding statistics. See docs/sampling.md.

Submodules are imported directly (``from padless.sampling.plan import BucketPlan``); this
package module stays import-free so that ``import padless.sampling.<x>`` stays cheap.
"""
