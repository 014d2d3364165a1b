"""Interoperability with other toolkits' model files: NeMo Canary ``.nemo`` archives to and
from padless checkpoints (`padless.interop.nemo`), read and written without the toolkit.

Above model and data (it builds models and tokenizers), below the command line
(``padless convert``). Submodules are imported directly
(``from padless.interop.nemo import convert_from_nemo``).
"""
