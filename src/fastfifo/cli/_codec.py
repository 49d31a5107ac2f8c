"""How messages look on the command line: recv prints each message in one of four
encodings and send reads the same four, so any message (binary ones included) survives
``fastfifo recv ... | fastfifo send ...``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json


def encoding_of(args: argparse.Namespace) -> str:
    return "null" if args.null else "hex" if args.hex else "json" if args.json else "raw"


def decode_input(item: bytes, encoding: str) -> bytes:
    """One message from one input item (a line, a NUL-terminated record or an argument)."""
    if encoding in ("raw", "null"):
        return item
    if encoding == "hex":
        try:
            return bytes.fromhex(item.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise ValueError(f"not hexadecimal: {item[:40]!r}") from None
    try:
        obj = json.loads(item)
    except ValueError:
        raise ValueError(f"not JSON: {item[:40]!r}") from None
    if isinstance(obj, str):
        return obj.encode("utf-8", "surrogatepass")
    if isinstance(obj, dict) and len(obj) == 1:
        if isinstance(obj.get("text"), str):
            return str(obj["text"]).encode("utf-8", "surrogatepass")
        if isinstance(obj.get("base64"), str):
            try:
                return base64.b64decode(obj["base64"], validate=True)
            except binascii.Error:
                raise ValueError(f"not base64: {obj['base64'][:40]!r}") from None
    raise ValueError(
        f'JSON input must be a string, {{"text": "..."}} or {{"base64": "..."}}, not {item[:40]!r}'
    )


def encode_output(msg: bytes, encoding: str) -> bytes:
    """How recv prints one message (its terminator included)."""
    if encoding == "raw":
        return msg + b"\n"
    if encoding == "null":
        return msg + b"\0"
    if encoding == "hex":
        return msg.hex().encode("ascii") + b"\n"
    try:
        obj = {"text": msg.decode("utf-8")}
    except UnicodeDecodeError:
        obj = {"base64": base64.b64encode(msg).decode("ascii")}
    return json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n"
