"""The commands' exit codes and `BadInput`, the error every command exits `EXIT_BAD_INPUT` on.

Every command exits `EXIT_OK` when it did its work, `EXIT_FAILED` when it failed (a diverged
training, a failed step, a full disk), `EXIT_BAD_INPUT` when its input cannot be used (the
message names the flag or file; nothing in the run folder is changed) and `EXIT_DEVICE_LOST`
when the phone it measures on was lost or could not be reached (connect it, run it again).

Example:
    >>> [MEANINGS.get(code, "failed") for code in (EXIT_FAILED, EXIT_BAD_INPUT, EXIT_DEVICE_LOST)]
    ['failed', 'bad input', 'phone lost']
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_DEVICE_LOST = 3
"""Exit code of a command whose phone was lost (or could not be reached): connect it and run it again."""
MEANINGS = {EXIT_BAD_INPUT: "bad input", EXIT_DEVICE_LOST: "phone lost"}
"""The exit codes a caller (the pipeline, of its steps) passes on as they are, and what they say."""


class BadInput(ValueError):
    """A flag value that cannot be used; the message names the flag. A command exits `EXIT_BAD_INPUT` on it."""

    exit_code = EXIT_BAD_INPUT
