"""Every op: importing this module registers each op module's stages in
:data:`~rasterflow.stages.STAGES` (a new op module is one more import here)."""
from . import stages, stages_arithm, stages_cnn, stages_imgproc  # noqa: F401
from .stages import STAGES

__all__ = ["STAGES"]
