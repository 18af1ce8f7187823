"""Provenance in a PDF's document information dictionary, as a PNG carries it in text chunks.

Graphviz writes a PDF without dreamlab's provenance; `add_pdf_info` appends an incremental update (PDF 1.7,
ISO 32000-1, 7.5.6): a new Info dictionary, a one-entry cross-reference section and a trailer pointing back to the
old one, so the bytes Graphviz wrote stay as they were and every reader sees the new Info.

>>> add_pdf_info("resnet18.pdf", {"dreamlab:model": "resnet18"})   # doctest: +SKIP
>>> read_pdf_info("resnet18.pdf")["dreamlab:model"]                 # doctest: +SKIP
'resnet18'
"""
from __future__ import annotations

import re
from pathlib import Path

from dreamlab.errors import DreamlabError

_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_TRAILER = re.compile(rb"trailer\s*<<(.*?)>>\s*startxref", re.S)
_NAME_CHARS = re.compile(r"[^A-Za-z0-9:_.\-]")


def _name(key: str) -> str:
    """`key` as a PDF name: characters outside a safe set written as #xx (7.3.5)."""
    return "/" + _NAME_CHARS.sub(lambda m: "".join(f"#{b:02X}" for b in m.group().encode()), key)


def _text(value: str) -> str:
    """`value` as a PDF text string: UTF-16BE with its byte order mark, in hex (7.9.2.2), so any character fits."""
    return "<FEFF" + value.encode("utf-16-be").hex().upper() + ">"


def add_pdf_info(path: str | Path, info: dict[str, str]) -> Path:
    """Append `info` (keys as PNG text chunk keys) to the PDF at `path` as its document information dictionary.

    A PDF whose trailer is a cross-reference stream (PDF 1.5 object streams) is refused in one line; Graphviz's
    cairo output has a classic trailer."""
    path = Path(path)
    data = path.read_bytes()
    end = _STARTXREF.search(data[-64:])
    trailers = _TRAILER.findall(data)
    if end is None or not trailers:
        raise DreamlabError(f"{path.name} has no classic PDF trailer; cannot add the provenance to it")
    trailer = trailers[-1]
    size = re.search(rb"/Size\s+(\d+)", trailer)
    root = re.search(rb"/Root\s+(\d+\s+\d+\s+R)", trailer)
    if size is None or root is None:
        raise DreamlabError(f"{path.name}'s PDF trailer names no /Size or /Root; cannot add the provenance to it")
    number = int(size.group(1))
    body = " ".join(f"{_name(key)} {_text(value)}" for key, value in {"Creator": "dreamlab", **info}.items())
    start = len(data) + 1
    obj = f"\n{number} 0 obj\n<< {body} >>\nendobj\n".encode()
    xref = len(data) + len(obj)
    # the free-list head (object 0) again, as readers that index the first section from 0 expect
    tail = (f"xref\n0 1\n0000000000 65535 f \n{number} 1\n{start:010d} 00000 n \ntrailer\n<< /Size {number + 1} /Root "
            f"{root.group(1).decode()} /Info {number} 0 R /Prev {int(end.group(1))} >>\nstartxref\n{xref}\n%%EOF\n")
    path.write_bytes(data + obj + tail.encode())
    return path


def read_pdf_info(path: str | Path) -> dict[str, str]:
    """The text entries of the last Info dictionary `add_pdf_info` appended to the PDF at `path` ({} if none)."""
    data = Path(path).read_bytes()
    trailers = _TRAILER.findall(data)
    info_ref = re.search(rb"/Info\s+(\d+)\s+0\s+R", trailers[-1]) if trailers else None
    if info_ref is None:
        return {}
    objects = re.findall(rb"\n" + info_ref.group(1) + rb" 0 obj\n<<(.*?)>>\nendobj", data, re.S)
    if not objects:
        return {}
    pairs = re.findall(rb"/([^\s<>/]+)\s*<FEFF([0-9A-F]*)>", objects[-1])
    unescape = re.compile(r"#([0-9A-Fa-f]{2})")
    return {unescape.sub(lambda m: chr(int(m.group(1), 16)), key.decode()): bytes.fromhex(value.decode())
            .decode("utf-16-be") for key, value in pairs}
