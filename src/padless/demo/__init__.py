"""`padless demo` (what `make demo` runs): the embedded corpus through every stage of padless,
data -> plan -> batch sizes -> training -> evaluation -> RTFx -> report.

The top library layer: it uses train, eval, batchsize, peers and infer; only the CLI is above
it. `config` holds the demo's own settings (the recipe lives in ``configs/demo-tiny.yaml``),
`steps` the chain, `padding` the optimized-vs-baseline sampler comparison, `plots` and `report`
the outputs.
"""
