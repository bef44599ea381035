"""What can be wrong with a data set: one `Problem` record and the `DataError` that carries it.

Every reader, the checks and the input pipeline report bad input the same way: the file
(or folder) at fault and one sentence saying what is wrong with it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with one file or folder of a data set.

    Args:
        path: the file or folder at fault (the missing one for a missing partner).
        problem: what is wrong, one sentence without the path.
        split: the split it was found in, or "" when it concerns the whole data set.

    Example:
        >>> print(Problem(Path("/d/train/a.png"), "truncated or corrupt image", "train"))
        /d/train/a.png: truncated or corrupt image
    """

    path: Path
    problem: str
    split: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class DataError(ValueError):
    """Bad input: a data set spec, folder or file that cannot be used, with the reason.

    The message always starts with the path at fault when there is one, so a training
    run that stops on it says which file to fix.

    Args:
        message: what is wrong.
        problem: the `Problem` this error reports, when it concerns one file.

    Example:
        >>> err = DataError.of(Problem(Path("m.png"), "mask is missing"))
        >>> str(err), err.problem.path.name
        ('m.png: mask is missing', 'm.png')
    """

    def __init__(self, message: str, problem: Problem | None = None):
        super().__init__(message)
        self.problem = problem

    @classmethod
    def of(cls, problem: Problem) -> "DataError":
        """The error reporting `problem` (message "PATH: PROBLEM")."""
        return cls(str(problem), problem)
