"""The errors of a training run (`fit`, the supernet, the differentiable search); each message says why and what
to do."""


class TrainingError(RuntimeError):
    """A training run that cannot start or continue; the message says why and what to do."""


class ResumeError(TrainingError):
    """The run folder holds a run whose fixed settings differ from the ones asked for."""


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite; the message names the epoch and step."""
