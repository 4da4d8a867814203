"""The only reader of Supervisely data: plain, blob and mixed projects."""

from slyfs.formats.readers.supervisely.project import ProblemLog, SourceError, read_project

__all__ = ["ProblemLog", "SourceError", "read_project"]
