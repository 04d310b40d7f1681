"""Training engine: one generic loop (:mod:`.loop`) and the systems it runs.

* :mod:`.losses`: partial-label Dice + CE with deep supervision, softmax-MSE consistency, ramp.
* :mod:`.augment`: nnU-Net-style augmentation (L/R mirroring swaps paired labels).
* :mod:`.sampling`: :class:`TrainVolume`, foreground-oversampled patches, background loader.
* :mod:`.mean_teacher`: the Mean Teacher (and supervised) system.
* :mod:`.cyclegan`: the 3D CycleGAN system and whole-volume translation.
* :mod:`.systems`: :class:`TrainSystem` (what the loop runs) and :class:`StepContext`.
* :mod:`.schedules`: learning-rate schedules (poly, linear decay).
* :mod:`.distributed`: device, ``torchrun`` process group, weight broadcast, gradient all-reduce.
* :mod:`.train_log`: ``train_log.csv`` / ``val_log.csv`` and TensorBoard.
* :mod:`.validation`: whole-volume Dice validation and the best-model keeper.
* :mod:`.loop`: the loop itself: AMP, checkpoints and exact resume.
* :mod:`.stages`: the stage API (run_stage, train_segmentation, train_cyclegan) the CLI and the
  notebooks call.
* :mod:`.cli`: ``flarelib train --params FILE --stage NAME`` (arguments and printing only).
"""

from flarelib.train.augment import AugmentConfig, augment_sample, mirror
from flarelib.train.checkpoint import load_checkpoint, load_model_weights, save_checkpoint
from flarelib.train.cyclegan import CycleGAN, ImagePool, translate_volume
from flarelib.train.loop import LoopConfig, LoopResult, train
from flarelib.train.losses import consistency_lambda, deep_supervision_loss, deep_supervision_weights
from flarelib.train.mean_teacher import MeanTeacher, ema_update
from flarelib.train.sampling import (
    BatchLoader,
    PatchSampler,
    SegmentationBatches,
    TrainVolume,
    UnpairedBatches,
)
from flarelib.train.systems import StepContext, TrainSystem
from flarelib.train.validation import dice_validator

__all__ = [
    "AugmentConfig",
    "BatchLoader",
    "CycleGAN",
    "ImagePool",
    "LoopConfig",
    "LoopResult",
    "MeanTeacher",
    "PatchSampler",
    "SegmentationBatches",
    "StepContext",
    "TrainSystem",
    "TrainVolume",
    "UnpairedBatches",
    "augment_sample",
    "consistency_lambda",
    "deep_supervision_loss",
    "deep_supervision_weights",
    "dice_validator",
    "ema_update",
    "load_checkpoint",
    "load_model_weights",
    "mirror",
    "save_checkpoint",
    "train",
    "translate_volume",
]
