"""The characters SQS allows in message bodies, attribute values and other text.

``#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF`` — the
characters of XML 1.0, so that anything accepted can be written in a query-protocol
response. Lone surrogates (U+D800..U+DFFF) are outside the set.
"""

from __future__ import annotations

import re

ALLOWED_CHARACTERS = "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"

_BAD_CHAR_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# In ASCII text only these are outside the set (the C0 controls but tab, LF and CR).
_ASCII_BAD = bytes(c for c in range(0x20) if c not in (0x9, 0xA, 0xD))


def first_bad_character(text: str) -> str | None:
    """The first character of ``text`` outside SQS's set, or None."""
    if text.isascii():
        # bytes.translate runs several times faster than the regex over ASCII text
        raw = text.encode("ascii")
        if len(raw.translate(None, _ASCII_BAD)) == len(raw):
            return None
    match = _BAD_CHAR_RE.search(text)
    return None if match is None else match.group()
