"""Errors: how a failure in job code becomes the one-line message the host reports."""

import os
import traceback


class EddyError(Exception):
    """An error meant for the user as it is (a missing argument, a misused builder); the
    host reports its message without a Python exception name."""


# Frames inside the SDK or the standard library are not what the user wants to see.
_SDK_DIR = os.path.dirname(os.path.abspath(__file__))
_STDLIB_DIR = os.path.dirname(os.path.abspath(os.__file__))


def _is_user_code(filename):
    path = os.path.abspath(filename)
    return not (path.startswith(_SDK_DIR) or path.startswith(_STDLIB_DIR)
                or filename.startswith("<frozen"))


def describe(e):
    """One line for exception ``e``: ``Type: message (at file.py:line in function)``, the
    location being the innermost frame of user code (not of the SDK)."""
    if isinstance(e, EddyError):
        return str(e)
    msg = str(e)
    text = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    where = None
    for frame in traceback.extract_tb(e.__traceback__):
        if _is_user_code(frame.filename):
            where = frame
    if where is not None:
        text += f" (at {os.path.basename(where.filename)}:{where.lineno} in {where.name})"
    return " ".join(text.split("\n"))
