"""Data layer: the metadata-only `Example` record, manifest readers, indexed shards, audio
decoding, the Canary tokenizer and prompts, the map-style dataset, and the embedded corpus."""
