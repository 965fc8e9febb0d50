"""The pipeline's error classes: a leaf module (imports nothing of the project).

Every error a user can fix derives from PipelineError, which `stage.run` prints as one line (exit 2).
"""


class PipelineError(Exception):
    """A problem the user can fix: the message names the file, key or stage and what to do."""


class ParamsError(PipelineError, ValueError):
    """A bad params file, or a stage reading a param its dvc.yaml entry does not declare."""


class CorpusError(PipelineError, RuntimeError):
    """A corpus file is missing, corrupted or malformed: the message names the file."""


class BaseModelError(PipelineError, RuntimeError):
    """A base model could not be built (missing, corrupt or unreachable source)."""


class DiskSpaceError(PipelineError, OSError):
    """An output would not fit the free disk: raised before any work."""


class MiraclError(PipelineError, RuntimeError):
    """MIRACL data missing, unreadable or unreachable: the message names the file and the fix."""
