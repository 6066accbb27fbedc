"""The in-car greeting as sound: "Hey there, <name>!" rendered to WAV by espeak-ng.

espeak-ng runs as a subprocess with an argument list (no shell) and reads the text from
its standard input, so nothing in a rider's name can become an option or a command. Names
are reduced to letters, digits, spaces and a few joining marks first, and each name's WAV
is kept (a car greets the same few riders many times). Without espeak-ng the service
answers 503 and the in-car page speaks with the browser's own voice instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import unicodedata
from collections import OrderedDict
from pathlib import Path

from robotaxi.core import RobotaxiError

VOICE = "en-us"
WORDS_PER_MINUTE = 150
MAX_NAME_CHARS = 40
RENDER_TIMEOUT_S = 10.0
CACHED_NAMES = 256
_JOINERS = " '-."
_SPACES = re.compile(r"\s+")


class SpeechUnavailableError(RobotaxiError):
    """espeak-ng is not installed, or it failed to render a greeting."""


def speakable_name(name: str) -> str:
    """The part of a rider's name that is read aloud: letters and digits (any script),
    single spaces and the marks that join names (apostrophe, hyphen, full stop: each only
    right after a letter or digit); at most
    `MAX_NAME_CHARS` characters. Empty when nothing speakable is left."""
    kept = []
    for ch in unicodedata.normalize("NFC", name):
        category = unicodedata.category(ch)
        if category[0] in "LN" or category == "Mn":
            kept.append(ch)
        elif ch in _JOINERS and kept and kept[-1] not in _JOINERS:
            kept.append(ch)  # only right after a letter: "O'Brien", "Dr.", not "--x"
        elif ch.isspace() or category[0] in "PSZC":
            kept.append(" ")  # other punctuation, symbols, controls: a pause at most
    text = _SPACES.sub(" ", "".join(kept)).strip(" '-.")
    return text[:MAX_NAME_CHARS].rstrip(" '-.")


def greeting_text(name: str) -> str:
    """What the car says: "Hey there, <name>!" (just "Hey there!" for an unspeakable name)."""
    spoken = speakable_name(name)
    return f"Hey there, {spoken}!" if spoken else "Hey there!"


class GreetingVoice:
    """Renders greetings with espeak-ng; thread-safe, with a per-name cache."""

    def __init__(self, executable: str | Path | None = None, *, search: bool = True) -> None:
        """`executable` is espeak-ng's path; by default it is looked up on PATH (`search`)."""
        found = executable if executable is not None else (
            shutil.which("espeak-ng") if search else None
        )  # fmt: skip
        self.executable = None if found is None else str(found)
        self.renders = 0  # subprocesses run (for tests and metrics)
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.executable is not None and Path(self.executable).is_file()

    def wav(self, name: str) -> bytes:
        """The greeting for `name` as a WAV file's bytes; raises `SpeechUnavailableError`."""
        text = greeting_text(name)
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                return cached
        data = self._render(text)
        with self._lock:
            self._cache[text] = data
            while len(self._cache) > CACHED_NAMES:
                self._cache.popitem(last=False)
        return data

    def _render(self, text: str) -> bytes:
        if not self.available or self.executable is None:
            raise SpeechUnavailableError(
                "spoken greetings need espeak-ng on the server (apt-get install espeak-ng); "
                "the in-car screen uses the browser's voice instead"
            )
        command = [self.executable, "--stdout", "-v", VOICE, "-s", str(WORDS_PER_MINUTE)]
        try:
            done = subprocess.run(
                command,
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=RENDER_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SpeechUnavailableError(f"espeak-ng could not render the greeting: {exc}") from exc
        with self._lock:
            self.renders += 1
        if done.returncode != 0 or not done.stdout.startswith(b"RIFF"):
            reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise SpeechUnavailableError(
                f"espeak-ng failed (exit {done.returncode}): {reason[0] if reason else 'no WAV'}"
            )
        return with_true_sizes(done.stdout)


def with_true_sizes(wav: bytes) -> bytes:
    """A WAV with its RIFF and data chunk sizes set from its length.

    Writing to a pipe, espeak-ng cannot seek back and leaves placeholder sizes (≈2 GB);
    some players then wait for data that never comes.
    """
    if len(wav) < 12 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise SpeechUnavailableError("espeak-ng did not produce a WAV file")
    offset = 12
    while offset + 8 <= len(wav):
        chunk, size = (
            wav[offset : offset + 4],
            int.from_bytes(wav[offset + 4 : offset + 8], "little"),
        )
        if chunk == b"data":
            data_size = len(wav) - offset - 8
            return (
                wav[:4]
                + (len(wav) - 8).to_bytes(4, "little")
                + wav[8 : offset + 4]
                + data_size.to_bytes(4, "little")
                + wav[offset + 8 :]
            )
        offset += 8 + size + (size & 1)
    raise SpeechUnavailableError("espeak-ng's WAV has no data chunk")
