"""Training: the config tree (`config`), its YAML loader (`yaml_config`) and the loop (`loop`).

Run it with ``padless train CONFIG.yaml --run-dir RUN`` or, for DDP,
``torchrun --nproc-per-node N -m padless.train CONFIG.yaml --run-dir RUN``
(the commands in full are in `padless.train.loop`).
"""
