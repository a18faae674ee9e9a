"""ember's error hierarchy: one base, one subclass per kind of mistake.

Each subclass is also the builtin a PyTorch user would catch (`ShapeError` is a
`ValueError`, `DTypeError` a `TypeError`), so `except ValueError` keeps working.
Messages say what was expected, what was received, the op, and the user's line.
"""
from __future__ import annotations

import linecache
import os
import sys
import sysconfig
import traceback
import warnings

EMBER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STDLIB_DIRS = tuple(
    p for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]} if p
)


class EmberError(Exception):
    """Base of every error ember raises on purpose."""


class ShapeError(EmberError, ValueError, RuntimeError):
    """Shapes that do not fit an op (mismatch, bad dim, bad size).

    Also a RuntimeError: PyTorch raises RuntimeError for these, so code written for it
    (`except RuntimeError`, `pytest.raises(RuntimeError)`) keeps working."""


class DTypeError(EmberError, TypeError, RuntimeError):
    """A dtype an op does not accept, or a cast PyTorch would refuse (a RuntimeError in
    PyTorch for most ops, a TypeError for some: both are caught)."""


class DTypeNotImplementedError(DTypeError, NotImplementedError):
    """A dtype an op has no kernel for: PyTorch's NotImplementedError ('"abs_cpu" not
    implemented for 'Bool'')."""


class EmberIndexError(EmberError, IndexError):
    """An index out of range or of a kind the op does not accept."""


class AutogradError(EmberError, RuntimeError):
    """Misuse of autograd: freed graphs, in-place changes to saved tensors, ..."""


class LinAlgError(EmberError, RuntimeError):
    """A matrix a linalg op cannot factor: singular, not positive-definite (torch's
    torch.linalg.LinAlgError, also a RuntimeError)."""


class TraceError(EmberError, RuntimeError, ValueError):
    """Tracing met something it cannot record (data-dependent control flow, ...); a
    ValueError as torch.fx's TraceError is, and a RuntimeError as its other refusals."""


class UserError(EmberError, RuntimeError):
    """ember.export refused what it was asked: a `dynamic_shapes` spec that does not fit
    the inputs, or a dynamic dimension the model's code specializes, relates to another
    or branches on (torch._dynamo.exc.UserError, which torch.export raises there)."""


class GuardError(EmberError, AssertionError, RuntimeError):
    """An exported program called with inputs it was not exported for (another shape,
    dtype, size outside a dynamic dimension's range): torch's exported module raises
    AssertionError ("Guard failed") there, earlier versions RuntimeError."""


class VerifyError(EmberError, RuntimeError):
    """A graph broke an IR invariant (SSA, arity, shapes)."""


class ParseError(EmberError, ValueError):
    """Malformed textual IR; the message carries line:column."""


class LoweringError(EmberError, NotImplementedError):
    """A backend has no kernel for an op."""


class ArtifactError(EmberError, RuntimeError):
    """A saved artifact is corrupt or from an incompatible version."""


class DeviceError(EmberError, RuntimeError):
    """Tensors on different devices in one op, or an unavailable device."""


class OutOfMemoryError(EmberError, MemoryError):
    """A device allocator could not satisfy a request."""


def is_user_frame(frame: traceback.FrameSummary) -> bool:
    """A frame outside ember, pytest's plumbing, installed packages and the stdlib."""
    return _is_user_file(frame.filename)


def _is_user_file(name: str) -> bool:
    if name.startswith(EMBER_DIR) or name.startswith(_STDLIB_DIRS) or name.startswith("<"):
        return False
    return not (os.sep + "site-packages" + os.sep in name and "ember" not in name)


def user_frame() -> traceback.FrameSummary | None:
    """Innermost frame outside ember, pytest's plumbing and the stdlib: the user's line.

    The frame `traceback.extract_stack()` would list (within `sys.tracebacklimit`), but
    only that one is summarized and has its source line read: tracing records one per
    op, and summarizing the whole stack each time was a fifth of a resnet's trace."""
    limit = getattr(sys, "tracebacklimit", None)
    frame, depth = sys._getframe(), 0
    while frame is not None and (limit is None or depth < limit):
        code = frame.f_code
        if _is_user_file(code.co_filename):
            linecache.lazycache(code.co_filename, frame.f_globals)
            linecache.checkcache(code.co_filename)
            return traceback.FrameSummary(code.co_filename, frame.f_lineno, code.co_name)
        frame, depth = frame.f_back, depth + 1
    return None


# how many warnings op rules have issued through warn_every_call: the eager layer does
# not cache the plan of a call whose meta rule warned, so the next call warns again
META_WARNINGS = [0]


def warn_every_call(message: str, category=UserWarning) -> None:
    """A warning an op's meta rule gives on each call that deserves it (PyTorch warns
    per call), attributed to the user's line."""
    META_WARNINGS[0] += 1
    warnings.warn(message, category, stacklevel=user_stacklevel())


def user_stacklevel() -> int:
    """warnings.warn's stacklevel that names the innermost frame outside ember (the
    caller of user_stacklevel is level 1)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith((EMBER_DIR, "<ember ")):
        frame, level = frame.f_back, level + 1    # ("<ember routing f>": generated wrappers)
    return level


def format_frame(frame: traceback.FrameSummary | None) -> str:
    """'file.py:14 in forward' plus the source line, or '' when unknown."""
    if frame is None:
        return ""
    where = f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}"
    line = (frame.line or "").strip()
    return f"{where}\n      {line}" if line else where


def at_user_line() -> str:
    """A suffix 'at file:line ...' for error messages, or '' when no user frame exists."""
    text = format_frame(user_frame())
    return f"\n  at {text}" if text else ""
