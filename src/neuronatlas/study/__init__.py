"""Studies of many networks: a spec of axes (:mod:`.spec`), its tasks keyed by content
(:mod:`.plan`, :mod:`.tasks`), run on Dask distributed or in this process (:mod:`.run`)."""

from .run import StudyResult, parse_scheduler, run_study
from .spec import NetworkSpec, SpecError, StudySpec, load_spec, parse_spec

__all__ = ["NetworkSpec", "SpecError", "StudyResult", "StudySpec", "load_spec", "parse_scheduler",
           "parse_spec", "run_study"]
