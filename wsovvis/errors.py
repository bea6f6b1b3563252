"""The one exception type that user-facing code raises for bad input.

The CLI turns it into ``error: <message>`` on stderr and a non-zero exit, so the
message must name the file, the item and what is wrong.
"""


class WsovvisError(Exception):
    """Bad input or an impossible request; the message is shown to the user as is."""


def describe_failure(e: BaseException) -> str | None:
    """The ``error:`` line for a failure caused by the user's files or machine, None for a bug.

    `WsovvisError` as is; ``OSError`` (permission, not a directory, is a directory, disk full ...) as
    ``<path>: <what>``; ``RecursionError`` / ``MemoryError`` on input and unpickling errors by kind.
    """
    import pickle

    if isinstance(e, WsovvisError):
        return str(e)
    if isinstance(e, OSError):
        what = e.strerror or str(e) or type(e).__name__
        if e.filename is not None and e.filename2 is not None:
            return f"{e.filename} -> {e.filename2}: {what}"
        if e.filename is not None:
            return f"{e.filename}: {what}"
        return f"{what} ({type(e).__name__})"
    if isinstance(e, RecursionError):
        return "input nested too deeply to process (RecursionError); is a JSON / config file malformed?"
    if isinstance(e, MemoryError):
        return "out of memory (MemoryError); the input or a size option is too large for this machine"
    if isinstance(e, pickle.UnpicklingError):
        return f"unreadable pickled file: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return None
