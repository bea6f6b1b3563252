"""The one exception type that user-facing code raises for bad input.

The CLI turns it into ``error: <message>`` on stderr and a non-zero exit, so the
message must name the file, the item and what is wrong.
"""


class WsovvisError(Exception):
    """Bad input or an impossible request; the message is shown to the user as is."""
