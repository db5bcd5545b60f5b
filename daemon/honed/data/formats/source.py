"""Bytes in, text lines out: the first look at a file, and line-by-line UTF-8 decoding that keeps going.

Every reader in this package gets its text through here, so an undecodable line is always reported the same
way (a Problem of kind "encoding" naming the line) and memory stays bounded by the longest line.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from typing import BinaryIO

from honed.data.example import Problem
from honed.errors import DataError

HEAD_BYTES = 64 * 1024
"""How much of a file detection looks at."""

ARCHIVES = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz",
            b"(\xb5/\xfd": "zstd", b"7z\xbc\xaf\x27\x1c": "7z"}
"""Magic numbers of the archives people upload by mistake: honed reads data files, it does not unpack."""

BINARY_MESSAGE = ("the file looks like a binary file, not text data (or text not saved as UTF-8); "
                  "upload JSONL, JSON, CSV, TSV, Markdown or plain text saved as UTF-8")


class _Prefixed(io.RawIOBase):
    """A non-seekable stream with the bytes already read from it put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size], self._head = self._head[:size], self._head[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def peek(handle: BinaryIO, size: int = HEAD_BYTES) -> tuple[bytes, BinaryIO]:
    """The first `size` bytes of a stream, and a stream that still starts at the beginning."""
    if handle.seekable():
        start = handle.tell()
        head = handle.read(size)
        handle.seek(start)
        return head, handle
    head = handle.read(size)
    return head, io.BufferedReader(_Prefixed(head, handle))  # type: ignore[return-value]


def check_text(head: bytes) -> str:
    """The decoded start of a file, or DataError when it is empty or not text at all."""
    if not head.strip():
        raise DataError("the file is empty; it needs at least one example")
    for magic, kind in ARCHIVES.items():
        if head.startswith(magic):
            raise DataError(f"the file is a {kind} archive; unpack it and upload the data file inside "
                            "(JSONL, JSON, CSV, TSV, Markdown or plain text)")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError("the file is saved as UTF-16; save it as UTF-8")
    if b"\x00" in head:
        raise DataError(BINARY_MESSAGE)
    # The head may end inside a multi-byte character; that one is not the file's fault.
    text = head.decode("utf-8", errors="replace").removeprefix("\ufeff")
    body = text[:-1] if text.endswith("\ufffd") else text
    odd = sum(1 for char in body if char == "\ufffd" or (char < " " and char not in "\t\n\r\f\b"))
    if odd > len(body) * 0.3:  # a few odd characters: text in another encoding, reported line by line
        raise DataError(BINARY_MESSAGE)
    return text


def text_lines(handle: BinaryIO, *, keepends: bool = False) -> Iterator[tuple[int, str, Problem | None]]:
    """(1-based line number, text, encoding problem or None) for each physical line.

    A line that is not valid UTF-8 comes with a Problem and its text decoded with U+FFFD in place of the bad
    bytes, so the caller can report it and go on."""
    for number, raw in enumerate(handle, start=1):
        problem = None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", errors="replace")
            problem = Problem(number, f"not valid UTF-8 (byte {exc.start + 1} of the line); save the file as UTF-8",
                              kind="encoding")
        if number == 1:
            text = text.removeprefix("\ufeff")
        yield number, (text if keepends else text.rstrip("\r\n")), problem
