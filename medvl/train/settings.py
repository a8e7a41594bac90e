"""Run settings of ``medvl pretrain`` (a YAML file plus ``key=value`` overrides, see :mod:`medvl.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class DataSettings:
    """Where the training pairs come from and how they are prepared.

    ``cache`` is the folder written by ``medvl cache``; when it does not exist yet and ``manifest`` is given,
    a single process builds it first with ``image_size``, ``ct_window`` and ``crop_body`` (CT cropped in plane
    to the body first; a distributed job refuses: build the cache as its own step). A training volume keeps
    ``max_slices`` slices: the same evenly spread ones every step (``slice_draw: even``), or one drawn from each of
    ``max_slices`` equal runs of the volume, anew each step (``jittered``: a lesion between the even slices is
    seen too). ``key_images`` (with the patch-concept term): where a report cites the key image of a finding it
    asserts ("(series 2, image 34)", :mod:`medvl.text.key_images`), that slice is always among the volume's
    training slices and the concept must match on it, not on whichever slice matches best; needs a cache whose
    slices were not resampled. ``workers`` read whole batches in background processes (``auto``: up to 8 per rank, leaving a
    core for the training loop), each keeping ``prefetch`` batches ready. ``labels`` feed the label-aware losses
    (soft targets): ``reports`` labels each training report with the medvl labeller (as MedCLIP does),
    ``manifest`` takes the manifest's labels. ``concepts`` is the vocabulary of the patch-concept term: every
    lexicon concept the training reports assert (``all``), or their findings only (``findings``: anatomy, sides
    and descriptors are always present somewhere in a volume, so they teach its regions nothing).
    ``label_prompts`` adds that many CXR-CLIP-style label prompts to each item's candidate texts, written from
    its ``labels`` ("Cardiomegaly is present. Pleural effusion is absent."; :mod:`medvl.text.label_prompts`).
    ``repeat_threshold`` t > 0 shows a training item whose rarest positive finding has training frequency f < t
    about ``sqrt(t / f)`` times per epoch (LVIS repeat-factor sampling), so a finding that few reports state is
    seen often enough to be learnt; findings at least that frequent leave the order unchanged.
    """

    cache: str = ""
    manifest: str = ""
    image_size: int = 128
    ct_window: str = "lung"
    crop_body: bool = False
    kinds: Literal["auto", "2d", "3d", "all"] = "auto"
    max_slices: int = 64
    slice_draw: Literal["even", "jittered"] = "even"
    key_images: bool = False
    train_split: str = "train"
    val_split: str = "val"
    workers: int | Literal["auto"] = "auto"
    prefetch: int = 4
    augment: Literal["convirt", "light", "none"] = "convirt"
    text: Literal["sentence", "report"] = "sentence"
    labels: Literal["reports", "manifest"] = "reports"
    concepts: Literal["all", "findings"] = "all"
    label_prompts: int = 0
    repeat_threshold: float = 0.0


@dataclass
class ModelSettings:
    """Architecture (a registry name or a config file) and changes to it.

    ``tokenizer: wordpiece`` trains a WordPiece tokenizer on the training reports into the run folder and
    uses it for a text encoder built from config. ``init_from`` starts from a saved model folder (e.g. the 2D
    stage of RadCLIP's schedule before the volume stage).
    """

    name: str = "tiny-resnet18"
    overrides: dict[str, Any] = field(default_factory=dict)
    tokenizer: Literal["config", "wordpiece"] = "config"
    vocab_size: int = 4000
    init_from: str = ""


@dataclass
class OptimSettings:
    """Optimizer and schedule (ConVIRT: Adam, lr 1e-4, weight decay 1e-6).

    ``lr`` is the rate of the projection heads, slice pooling and logit parameters; ``image_lr`` / ``text_lr``
    set the image and text encoders' own rates (None or 0: ``lr``), e.g. about 2e-5 for a pretrained BERT and
    5e-5 to 1e-4 for a pretrained vision tower. Weight decay skips biases, norms, embeddings and the logit
    parameters (:mod:`medvl.models.param_groups`).
    """

    name: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-4
    image_lr: float | None = None
    text_lr: float | None = None
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["cosine", "plateau", "constant"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0


@dataclass
class TrainSettings:
    """Loop, precision, checkpoints, validation and distribution.

    ``grad_accum=k`` makes the contrastive batch ``k`` times larger at the memory of one micro-batch (as
    open_clip's ``accum_freq``): features of all micro-batches are computed without gradients, then each
    micro-batch is recomputed with gradients against the cached rest. ``precision``: ``auto`` is bf16 on GPUs
    that support it, fp16 with a gradient scaler on older GPUs (V100, T4), fp32 on the CPU. ``device``:
    ``auto`` (this rank's GPU, else the CPU), ``cpu`` or ``cuda``. ``strategy``: ``ddp`` replicates the model;
    ``fsdp`` shards the towers (FSDP2) and writes sharded checkpoints (``last.dcp/``). ``calibrate``: the
    exported model gets its calibration and training domain (one pass over validation and up to 4,096 training
    studies); a staged recipe turns it off for every stage but the last, whose model is the one used.
    """

    steps: int = 200
    batch_size: int = 32
    grad_accum: int = 1
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    device: str = "auto"
    compile: bool = False
    seed: int = 0
    log_every: int = 10
    eval_every: int = 50
    checkpoint_every: int = 50
    early_stop_patience: int = 0
    early_stop_metric: str = "val_mean_R"
    strategy: Literal["ddp", "fsdp"] = "ddp"
    local_loss: bool = False
    gather_with_grad: bool = True
    sync_batchnorm: bool = True
    calibrate: bool = True


@dataclass
class TrackingSettings:
    """MLflow (URI from the setting, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``)."""

    uri: str = ""
    experiment: str = "medvl-pretrain"
    register_as: str = ""
    log_model: bool = True


@dataclass
class PretrainConfig:
    """Everything a ``medvl pretrain`` run needs; written as ``config.yaml`` into the run folder."""

    output_dir: str = "runs"
    run_name: str = "pretrain"
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
