"""The embedded multilingual corpus: English, German, French and Spanish speech synthesized with
espeak-ng, with transcripts and exact translations (ASR in each language, AST X->en and en->X).

- phrases.py  sentences with exact translations (numbers, dates, times, quantities as words)
- config.py   `CorpusConfig`, documented field by field
- plan.py     what each utterance says, in which voice, for which task
- espeak.py   the espeak-ng C API through ctypes, reproducible per call
- synth.py    plan -> 16 kHz FLAC bytes + NeMo manifest record (runs in worker processes)
- writer.py   `synthesize_corpus`: the worker pool, FLAC files, manifests, shards, corpus.json
"""
