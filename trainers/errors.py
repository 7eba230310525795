"""The one error type that means "the user's input is wrong".

Raised anywhere (spec, schema, data, checkpoint); the command line prints its
message as one line and exits with code 2, without a traceback.  The message
names the file, key or value at fault.
"""
from typing import Any


class UserError(Exception):
    """Bad input: a spec key, a data file, a checkpoint, a command-line value."""


def describe_value(value: Any) -> str:
    """A value as error messages show it: short repr and its YAML kind, e.g. ``'abc' (string)``."""
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping",
            type(None): "null"}.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({kind})"
