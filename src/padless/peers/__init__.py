"""Peers: the reference implementations padless is compared with, run side by side on the same
data with equivalent settings. Above sampling and data; nothing in padless depends on it but the
command line and the benchmarks.

- lhotse_config.py   the lhotse peer's settings and what "equivalent" means (bins, filters, ranks)
- lhotse_cuts.py     padless Examples as lhotse cuts
- lhotse_buckets.py  NeMo's 2D bucket rule, lhotse constraints over it, NeMo's filters
- lhotse_run.py      run lhotse's DynamicBucketingSampler per rank; its peak RSS in a subprocess
- settings.py        a padless plan + policy + sampler config as lhotse peer settings
- compare.py         what ``padless bench-sampler`` measures, for padless and for the peer
- rss.py             a process's resident memory (current and peak)

Submodules are imported directly (``from padless.peers.lhotse_run import run_lhotse_peer``).
"""
