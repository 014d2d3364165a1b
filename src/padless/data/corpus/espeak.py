"""espeak-ng speech synthesis through its C API (ctypes), from the ``espeakng-loader`` wheel.

The wheel ships ``libespeak-ng.so`` and its ``espeak-ng-data``, so nothing needs installing on
the system. espeak-ng keeps global state and is not thread-safe: use one `Espeak` per process
(`Espeak.instance()`), and parallelise with processes, never threads.

Synthesis runs in synchronous mode: ``espeak_Synth`` returns after calling our callback with
every block of 16-bit samples at the voice's rate (22050 Hz), so no audio device is involved.

Reproducibility: espeak-ng's waveform generator keeps static state that no API call resets (the
pitch-flutter phase, gain control, cycle counters; ``espeak_Initialize`` leaves them alone), so
the same text spoken twice gives different samples and lengths depending on everything spoken
before; and its noise sources (breathy voices, fricatives) differ from process to process unless
seeded. `Espeak.synthesize` therefore speaks in a forked child of a process that has never
synthesized anything, with espeak-ng's and the C library's random generators seeded from its
``seed`` argument: the output is a function of the arguments only. The fork adds a few
milliseconds per call, about 2.5x the in-process synthesis time (bench/bench_corpus.py measures
both), which leaves synthesis hundreds of times faster than real time. POSIX only (``os.fork``).
"""

from __future__ import annotations

import ctypes
import os
from typing import ClassVar

import numpy as np

# Constants of espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of calling exit() on bad data
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1  # words per minute, 80-450
_PARAM_PITCH = 3  # base pitch, 0-100 (50 is the voice's default)

# int callback(short *wav, int numsamples, espeak_EVENT *events); we never read the events.
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded, initialised, or asked to speak."""


class Espeak:
    """One initialised espeak-ng engine; synthesize text with a voice, rate and pitch."""

    _instance: ClassVar[Espeak | None] = None

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        data_path = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed ({rate}) with data at {data_path!r}")
        self.sampling_rate: int = rate
        self._blocks: list[np.ndarray] = []
        # Kept on the instance: ctypes frees the trampoline when the Python object dies.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def instance(cls) -> Espeak:
        """The process's engine, created on first use (espeak-ng has global state)."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], num_samples: int, _events: int) -> int:
        if num_samples > 0:
            self._blocks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0  # continue synthesis

    def synthesize(
        self, text: str, voice: str, rate: int = 175, pitch: int = 50, seed: int = 0
    ) -> np.ndarray:
        """Speak ``text``; returns int16 samples, shape (num_samples,), at `sampling_rate`.

        ``voice`` is an espeak-ng voice name with an optional variant, e.g. ``"de"``,
        ``"en-us+f2"``, ``"es+klatt3"``; ``rate`` is in words per minute, ``pitch`` 0-100;
        ``seed`` seeds the noise sources. Runs in a forked child, so the result depends on the
        arguments only.
        """
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: speak, send b"ok" + samples or b"er" + message, exit at once
            os.close(read_fd)
            try:
                self._lib.espeak_ng_SetRandSeed(seed)
                ctypes.CDLL(None).srand(seed)
                payload = b"ok" + self._speak(text, voice, rate, pitch).tobytes()
            except BaseException as err:  # reported to the parent, which raises
                payload = b"er" + str(err).encode()
            with os.fdopen(write_fd, "wb") as pipe:
                pipe.write(payload)
            os._exit(0)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        if payload[:2] == b"er":
            raise EspeakError(payload[2:].decode())
        if payload[:2] != b"ok" or status != 0:
            raise EspeakError(f"espeak-ng child process failed (status {status}) on {text!r}")
        return np.frombuffer(payload, dtype=np.int16, offset=2).copy()

    def _speak(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        data = text.encode() + b"\0"
        self._blocks = []
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise EspeakError(f"espeak_Synth failed ({status}) on {text!r} with voice {voice!r}")
        lib.espeak_Synchronize()
        blocks, self._blocks = self._blocks, []
        return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int16)
