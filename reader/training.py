"""Fine-tune a Hugging Face encoder as an extractive QA reader on SQuAD-format data.

Any encoder works as the base: `AutoModelForQuestionAnswering` adds a fresh span head (`qa_outputs`) to a plain
encoder, and this module trains the whole network to predict the answer's start and end tokens. Windows that do not
contain the answer are labelled with the CLS token, which is also how the reader learns to abstain.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Encoding
from tqdm.auto import tqdm
from transformers import (
    AutoModelForQuestionAnswering,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    get_linear_schedule_with_warmup,
)

from .checkpoint import (
    RUN_FILE,
    TrainingState,
    append_curve_point,
    latest_checkpoint,
    load_checkpoint,
    read_curve,
    read_run_config,
    save_checkpoint,
    truncate_curve,
    write_run_config,
)
from .backend import TorchBackend
from .core import ReadOptions
from .distillation import (
    CACHE_FOLDER,
    CLS_MARK,
    DISTILL_SOFTMAXES,
    OFF_PASSAGE,
    Teacher,
    TeacherCache,
    distillation_loss,
    windows_key,
)
from .evaluation import evaluate_reader
from .hardware import bound_training_kernel_cache, resolve_device, training_autocast_dtype
from .model import ReaderModel, usable_positions
from .shared_norm import shared_norm_loss
from .squad_metric import SquadDataset, load_squad
from .training_data import TrainExample, load_training_examples
from .windows import PAD_MULTIPLE, make_windows, prepare_questions

TOKENIZE_CHUNK = 1000  # examples per fast-tokenizer call: large enough to use its threads, small enough for memory
SORT_GROUP = 50  # batches per length-sorted group in the length-grouped sampler
LOG_EVERY = 20  # optimizer steps between progress-bar loss updates (each update syncs the GPU)
EVAL_SAMPLE_SEED = 0  # the dev sample of every learning curve is the same questions
OBJECTIVES = ("window", "shared")


@dataclass
class TrainConfig:
    """Everything one training run depends on; defaults follow the SQuAD model cards (see README of the data)."""

    #: One SQuAD-format or groups file, or several trained on together.
    train_file: str | Path | list[str | Path]
    base_model: str | Path
    output_dir: str | Path
    #: Window geometry: the reader's own defaults, so that a model is trained on windows like those it reads.
    max_seq_length: int = ReadOptions.max_seq_length
    doc_stride: int = ReadOptions.doc_stride
    max_question_length: int = ReadOptions.max_question_length
    learning_rate: float = 3e-5
    batch_size: int = 32
    gradient_accumulation: int = 1
    epochs: int = 2
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 42
    limit: int | None = None
    #: Stop after this many optimizer steps (the schedule decays to zero there): a shuffled sample of every
    #: article, unlike ``limit``'s first questions, for runs that cannot afford a whole epoch.
    max_steps: int | None = None
    negatives: float = 0.0
    #: "window": each window's own softmax, the answer's tokens or CLS (the SQuAD recipe). "shared": one softmax
    #: over all windows of a question's passages (``shared_norm``), as ``read`` compares spans across passages.
    objective: str = "window"
    device: str = "auto"
    mixed_precision: bool = True
    #: SQuAD-format file whose seeded sample of ``eval_questions`` questions is scored every ``eval_every``
    #: optimizer steps and at the end (``curve.jsonl`` in the run folder): the run's learning curve.
    eval_file: str | Path | None = None
    eval_questions: int = 1000
    eval_every: int = 500
    #: A trained reader whose start and end distributions the model also learns (``distillation``), or None.
    teacher: str | Path | None = None
    #: The share of the loss that is the teacher's (the rest is the hard labels').
    distill_weight: float = 0.5
    #: Softmax temperature of the distillation term.
    distill_temperature: float = 2.0
    #: Where the distillation term's softmax runs: "window", or "question" (all of a question's windows together,
    #: with the "shared" objective: how the teacher ranks passages, for a teacher trained for a corpus).
    distill_softmax: str = "window"


@dataclass
class Features:
    """Tokenised, labelled windows, stored as flat int32 arrays so that 100k windows stay small in memory."""

    columns: dict[str, np.ndarray]  # input_ids (and token_type_ids if the model takes them), all windows concatenated
    bounds: np.ndarray  # window i is columns[...][bounds[i]:bounds[i + 1]]
    start_positions: np.ndarray
    end_positions: np.ndarray
    example_index: np.ndarray  # the example each window was cut from
    #: The question each window belongs to: the unit of shared normalization (every window of one question's
    #: passages shares one softmax). Filled by ``train`` from the examples' groups.
    group_index: np.ndarray | None = None
    #: [tokens, 2] each token's characters in its passage (``distillation.OFF_PASSAGE`` off it, ``CLS_MARK`` on
    #: CLS), aligned with ``columns``; made only for distillation (``make_features(with_offsets=True)``).
    offsets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.start_positions)

    @property
    def lengths(self) -> np.ndarray:
        """Token count of every window, for length grouping."""
        return np.diff(self.bounds)

    def window(self, i: int, column: str = "input_ids") -> np.ndarray:
        """The tokens of window i."""
        return self.columns[column][self.bounds[i] : self.bounds[i + 1]]


def _label_window(encoding: Encoding, cls_index: int, example: TrainExample) -> tuple[int, int]:
    """Start/end token of the answer in one window, or (cls, cls) when the window's context does not hold it all."""
    if example.answer_start is None:
        return cls_index, cls_index
    offsets, sequence_ids = encoding.offsets, encoding.sequence_ids
    first = sequence_ids.index(1)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
    start_char = example.answer_start
    end_char = start_char + len(example.answer_text)
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return cls_index, cls_index
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def make_features(
    tokenizer: PreTrainedTokenizerBase,
    examples: Sequence[TrainExample],
    max_seq_length: int,
    doc_stride: int,
    max_question_length: int,
    with_offsets: bool = False,
) -> Features:
    """Cut (question, context) pairs into windows with the reader's own code (``windows``) and label the answer
    span in each; ``with_offsets`` also keeps each token's characters in its passage (``Features.offsets``).

    No padding here: batches are padded to their own longest window at collate time.
    """
    names = [n for n in tokenizer.model_input_names if n != "attention_mask"]
    cls_id = tokenizer.cls_token_id
    columns: dict[str, list[np.ndarray]] = {n: [] for n in names}
    starts: list[int] = []
    ends: list[int] = []
    sources: list[int] = []
    offsets: list[np.ndarray] = []
    for lo in range(0, len(examples), TOKENIZE_CHUNK):
        chunk = examples[lo : lo + TOKENIZE_CHUNK]
        questions = prepare_questions(tokenizer, [e.question for e in chunk], max_seq_length, doc_stride, max_question_length)
        windows = make_windows(tokenizer, questions, [e.context for e in chunk], max_seq_length, doc_stride)
        for encoding, sample in zip(windows.encodings, windows.pair_index.tolist()):
            values = {"input_ids": encoding.ids}
            if "token_type_ids" in columns:
                values["token_type_ids"] = encoding.type_ids
            ids = values["input_ids"]
            cls_index = ids.index(cls_id) if cls_id in ids else 0
            start, end = _label_window(encoding, cls_index, chunk[sample])
            starts.append(start)
            ends.append(end)
            sources.append(lo + sample)
            for n in names:
                columns[n].append(np.asarray(values[n], dtype=np.int32))
            if with_offsets:
                offsets.append(_passage_offsets(encoding, cls_index))
    lengths = [len(ids) for ids in columns["input_ids"]]
    return Features(
        columns={n: np.concatenate(parts) if parts else np.zeros(0, np.int32) for n, parts in columns.items()},
        bounds=np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]),
        start_positions=np.asarray(starts, dtype=np.int64),
        end_positions=np.asarray(ends, dtype=np.int64),
        example_index=np.asarray(sources, dtype=np.int64),
        offsets=(np.concatenate(offsets) if offsets else np.zeros((0, 2), np.int32)) if with_offsets else None,
    )


def _passage_offsets(encoding: Encoding, cls_index: int) -> np.ndarray:
    """[tokens, 2] characters of each passage token; OFF_PASSAGE elsewhere, CLS_MARK on the CLS token."""
    found = np.full((len(encoding.ids), 2), OFF_PASSAGE, dtype=np.int32)
    for position, (sequence, span) in enumerate(zip(encoding.sequence_ids, encoding.offsets)):
        if sequence == 1:
            found[position] = span
    found[cls_index] = CLS_MARK
    return found


def length_grouped_batches(
    lengths: np.ndarray, batch_size: int, generator: torch.Generator, group: int = SORT_GROUP
) -> list[np.ndarray]:
    """Shuffle, sort by length within groups of `group` batches, then shuffle the batches.

    Windows of similar length share a batch, so dynamic padding wastes little compute, while the order of batches
    stays random.
    """
    order = torch.randperm(len(lengths), generator=generator).numpy()
    batches = []
    span = batch_size * group
    for lo in range(0, len(order), span):
        chunk = order[lo : lo + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    return [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]


def collate(features: Features, indices: np.ndarray, pad_values: Mapping[str, int]) -> dict[str, torch.Tensor]:
    """Pad the chosen windows to the longest among them (rounded up to PAD_MULTIPLE, see windows.py) and add
    the attention mask and labels."""
    width = -(-int(features.lengths[indices].max()) // PAD_MULTIPLE) * PAD_MULTIPLE
    batch = {}
    for name in features.columns:
        padded = np.full((len(indices), width), pad_values.get(name, 0), dtype=np.int64)
        for row, i in enumerate(indices):
            tokens = features.window(i, name)
            padded[row, : len(tokens)] = tokens
        batch[name] = torch.from_numpy(padded)
    mask = np.arange(width)[None, :] < features.lengths[indices][:, None]
    batch["attention_mask"] = torch.from_numpy(mask.astype(np.int64))
    batch["start_positions"] = torch.from_numpy(features.start_positions[indices])
    batch["end_positions"] = torch.from_numpy(features.end_positions[indices])
    return batch


def _make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only: decaying biases and LayerNorm gains only hurts."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.learning_rate, fused=device.type == "cuda")


class StopControl:
    """Decides when a run stops before its last step: on SIGINT/SIGTERM, or when its time budget is spent.

    The loop asks ``reached`` after every optimizer step and, when it says so, writes a checkpoint and returns.
    A second SIGINT while that happens interrupts at once (the previous checkpoint stays whole).
    """

    def __init__(self, time_budget_minutes: float | None = None) -> None:
        self.deadline = None if time_budget_minutes is None else time.monotonic() + 60 * time_budget_minutes
        self.reason: str | None = None

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason

    def reached(self, global_step: int) -> bool:
        if self.reason is None and self.deadline is not None and time.monotonic() >= self.deadline:
            self.reason = "time budget spent"
        return self.reason is not None

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """Turn SIGINT and SIGTERM into a stop request while the loop runs (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.reason is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.request(signal.Signals(signum).name)

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in previous.items():
                signal.signal(s, h)


@dataclass(frozen=True)
class TrainOutcome:
    """How a call to ``train`` ended: ``finished`` with the model in ``run_dir``, or stopped at a checkpoint."""

    run_dir: Path
    finished: bool
    global_step: int
    total_steps: int
    stop_reason: str | None = None


@dataclass
class _Loop:
    """The moving parts of the optimisation loop, bundled so the epoch function stays readable."""

    model: PreTrainedModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None
    accumulation: int
    max_grad_norm: float
    pad_values: dict[str, int]
    objective: str = "window"
    #: Distillation (``config.teacher``): the teacher, its cache, the examples the windows were cut from.
    teacher: Teacher | None = None
    teacher_cache: TeacherCache | None = None
    examples: Sequence[TrainExample] = ()
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    distill_softmax: str = "window"

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision where ``hardware.training_autocast_dtype`` chose it, a no-op otherwise."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def step(self) -> None:
        """One optimizer update from the accumulated gradients."""
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def micro_batch(self, features: Features, indices: np.ndarray) -> torch.Tensor:
        """Forward and backward one micro-batch; returns its (unscaled) loss."""
        batch = collate(features, indices, self.pad_values)
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        shared = self.objective == "shared"
        groups = torch.from_numpy(features.group_index[indices]).to(self.device) if shared else None
        with self.autocast():
            if shared:
                labels = {k: batch.pop(k) for k in ("start_positions", "end_positions")}
                output = self.model(**batch)
                loss = shared_norm_loss(output.start_logits, output.end_logits, batch["attention_mask"],
                                        labels["start_positions"], labels["end_positions"], groups)
            else:
                output = self.model(**batch)
                loss = output.loss
            if self.teacher is not None:
                teacher_start, teacher_end = self.teacher_targets(features, indices, batch["input_ids"].shape[1])
                soft = distillation_loss(output.start_logits, output.end_logits, teacher_start, teacher_end,
                                         self.distill_temperature, groups if self.distill_softmax == "question" else None)
                loss = (1 - self.distill_weight) * loss + self.distill_weight * soft
        self.scaler.scale(loss / self.accumulation).backward()
        return loss.detach().float()

    def teacher_targets(self, features: Features, indices: np.ndarray, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The teacher's logits on the windows, [B, width] each; windows it has not read yet are read now."""
        cache = self.teacher_cache
        missing = cache.missing(indices)
        if len(missing):
            examples = [self.examples[features.example_index[w]] for w in missing]
            read = self.teacher.read(
                [e.question.lstrip() for e in examples],
                [e.context for e in examples],
                [features.offsets[features.bounds[w] : features.bounds[w + 1]] for w in missing],
            )
            for window, (start, end) in zip(missing, read):
                cache.put(window, start, end)
        start, end = cache.batch(indices, width)
        return start.to(self.device), end.to(self.device)

    def snapshot(self, state: TrainingState) -> TrainingState:
        """``state`` (positions and counters) completed with the current weights, optimizer and RNG states."""
        state.model = self.model.state_dict()
        state.optimizer = self.optimizer.state_dict()
        state.scheduler = self.scheduler.state_dict()
        state.scaler = self.scaler.state_dict()
        state.torch_rng = torch.get_rng_state()
        state.cuda_rng = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        return state

    def restore(self, state: TrainingState) -> None:
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        self.scaler.load_state_dict(state.scaler)
        torch.set_rng_state(state.torch_rng)
        if self.device.type == "cuda" and state.cuda_rng:
            torch.cuda.set_rng_state_all(state.cuda_rng)


def _accumulation_groups(batches: list[np.ndarray], accumulation: int) -> list[list[np.ndarray]]:
    """The micro-batches of each optimizer step; the last step of an epoch may have fewer."""
    return [batches[lo : lo + accumulation] for lo in range(0, len(batches), accumulation)]


def _save(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> None:
    """A standard Hugging Face folder (model.safetensors, config.json naming *ForQuestionAnswering, tokenizer)."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def epoch_batches(features: Features, config: TrainConfig, generator: torch.Generator) -> list[np.ndarray]:
    """One epoch's micro-batches of window indices, in training order.

    "window" objective: length-grouped batches of ``batch_size`` windows. "shared": whole groups (a question's
    windows are never split), length-grouped by their longest window, as many groups per batch as hold
    ``batch_size`` windows on average; a batch's window count varies, the number of batches does not.
    """
    if config.objective != "shared":
        return length_grouped_batches(features.lengths, config.batch_size, generator)
    members = _group_members(features)
    longest = np.asarray([features.lengths[m].max() for m in members])
    batches = length_grouped_batches(longest, _groups_per_batch(features, config), generator)
    return [np.concatenate([members[g] for g in batch]) for batch in batches]


def _group_members(features: Features) -> list[np.ndarray]:
    order = np.argsort(features.group_index, kind="stable")
    cuts = np.flatnonzero(np.diff(features.group_index[order])) + 1
    return np.split(order, cuts)


def _groups_per_batch(features: Features, config: TrainConfig) -> int:
    groups = len(np.unique(features.group_index))
    return max(1, round(config.batch_size * groups / len(features)))


def _steps_per_epoch(features: Features, config: TrainConfig) -> int:
    if config.objective == "shared":
        batches = math.ceil(len(np.unique(features.group_index)) / _groups_per_batch(features, config))
    else:
        batches = math.ceil(len(features) / config.batch_size)
    return math.ceil(batches / config.gradient_accumulation)


def _load_model(config: TrainConfig, device: torch.device) -> PreTrainedModel:
    """The base in fp32 (master weights must be fp32 even from a half checkpoint); a plain encoder gets a new head.

    transformers reads model.safetensors in preference to pickled weights; remote code is never run.
    """
    torch.manual_seed(config.seed)  # the fresh qa_outputs head is drawn from the global generator
    model = AutoModelForQuestionAnswering.from_pretrained(
        config.base_model, dtype=torch.float32, trust_remote_code=False
    )
    return model.to(device)


def config_to_json(config: TrainConfig) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}


def resume_config(run_dir: str | Path) -> TrainConfig:
    """The ``TrainConfig`` a run folder was started with (``run.json``)."""
    return TrainConfig(**read_run_config(Path(run_dir)))


class _DevSample:
    """A fixed, seeded sample of dev questions on which the run measures F1 as it trains: its learning curve."""

    def __init__(self, config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        dataset = load_squad(config.eval_file)
        chosen = sorted(random.Random(EVAL_SAMPLE_SEED).sample(range(len(dataset.examples)),
                                                               min(config.eval_questions, len(dataset.examples))))
        self.dataset = SquadDataset(version=dataset.version, examples=[dataset.examples[i] for i in chosen])
        self.tokenizer = tokenizer
        self.options = ReadOptions(
            max_seq_length=config.max_seq_length, doc_stride=config.doc_stride,
            max_question_length=config.max_question_length,
        )

    def measure(self, loop: _Loop) -> dict[str, float]:
        """EM and F1 of the model as it stands, read as users read (``read``), under the training autocast."""
        reader = ReaderModel(
            name="training", backend=TorchBackend(loop.model, loop.device, "float32"), tokenizer=self.tokenizer,
            max_positions=usable_positions(loop.model.config, self.tokenizer), no_answer_threshold=None,
        )
        loop.model.eval()
        try:
            with loop.autocast():
                metrics = evaluate_reader(reader, self.dataset, self.options, progress=False)
        finally:
            loop.model.train()
        return {"exact": metrics["exact"], "f1": metrics["f1"]}


def train(
    config: TrainConfig,
    progress: bool = True,
    *,
    resume: bool = False,
    checkpoint_minutes: float = 15.0,
    stop: StopControl | None = None,
) -> TrainOutcome:
    """Fine-tune ``config.base_model`` on ``config.train_file`` in the run folder ``config.output_dir``.

    Parameters:
        config: the run's settings; recorded in ``run.json`` so that a resume needs only the folder.
        progress: show a progress bar.
        resume: continue from the folder's newest checkpoint (refused when it has none); without it, a folder
            that already holds a checkpoint is refused rather than overwritten.
        checkpoint_minutes: write a checkpoint after the first step that ends this long after the previous one.
        stop: when to stop early (signals, time budget); a stop writes a checkpoint first.

    Returns how the call ended. A finished run leaves the model (a standard Hugging Face folder) in
    ``config.output_dir``, with ``training_args.json`` and, per finished epoch, ``epoch-N/``.
    """
    stop = stop or StopControl()
    run_dir = Path(config.output_dir)
    found = latest_checkpoint(run_dir)
    if resume and found is None:
        raise ValueError(f"{run_dir}: no checkpoint to resume from")
    if not resume and found is not None:
        raise ValueError(f"{run_dir} holds a run checkpointed at {found.name}: continue it with --resume {run_dir}")
    if resume and config_to_json(resume_config(run_dir)) != config_to_json(config):
        raise ValueError(f"{run_dir}: the settings differ from the run's {RUN_FILE}; resume with the recorded ones")
    device = resolve_device(config.device)
    bound_training_kernel_cache(device)
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    if not tokenizer.is_fast:
        raise ValueError(f"{config.base_model}: span labelling needs a fast tokenizer (character offsets)")
    if config.objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {config.objective!r}")
    if config.distill_softmax not in DISTILL_SOFTMAXES:
        raise ValueError(
            f"distill_softmax must be one of {', '.join(DISTILL_SOFTMAXES)}, not {config.distill_softmax!r}"
        )
    if config.distill_softmax == "question" and config.objective != "shared":
        raise ValueError("distill_softmax 'question' needs objective 'shared': only then does a batch hold whole questions")
    files = config.train_file if isinstance(config.train_file, list) else [config.train_file]
    examples, group_of = load_training_examples([Path(f) for f in files], config.limit, config.negatives, config.seed)
    features = make_features(tokenizer, examples, config.max_seq_length, config.doc_stride, config.max_question_length,
                             with_offsets=config.teacher is not None)
    features.group_index = np.asarray(group_of, dtype=np.int64)[features.example_index]
    if not len(features):
        raise ValueError(f"{config.train_file}: no training examples")
    dev_sample = _DevSample(config, tokenizer) if config.eval_file else None
    model = _load_model(config, device)
    optimizer = _make_optimizer(model, config, device)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = _steps_per_epoch(features, config)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    amp_dtype = training_autocast_dtype(device, config.mixed_precision)
    loop = _Loop(
        model=model,
        optimizer=optimizer,
        scheduler=get_linear_schedule_with_warmup(optimizer, round(config.warmup_ratio * total_steps), total_steps),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        device=device,
        amp_dtype=amp_dtype,
        accumulation=config.gradient_accumulation,
        max_grad_norm=config.max_grad_norm,
        pad_values={"input_ids": tokenizer.pad_token_id, "token_type_ids": tokenizer.pad_token_type_id},
        objective=config.objective,
        examples=examples,
        distill_weight=config.distill_weight,
        distill_temperature=config.distill_temperature,
        distill_softmax=config.distill_softmax,
    )
    if config.teacher is not None:
        loop.teacher = Teacher(config.teacher, device, amp_dtype)
        key = windows_key(loop.teacher.fingerprint(), features.columns["input_ids"], features.bounds)
        loop.teacher_cache = TeacherCache.open(run_dir, key, features.bounds)
    if found is not None:
        state = load_checkpoint(found)
        loop.restore(state)
        truncate_curve(run_dir, state.global_step)
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_run_config(run_dir, config_to_json(config))
        state = TrainingState(
            model={}, optimizer={}, scheduler={}, scaler={}, epoch=1, step_in_epoch=0, global_step=0,
            epoch_generator=generator.get_state(), torch_rng=torch.get_rng_state(),
        )

    def checkpoint() -> None:
        if loop.teacher_cache is not None:
            loop.teacher_cache.save(run_dir)
        save_checkpoint(run_dir, loop.snapshot(state))

    loop.model.train()
    last_checkpoint = time.monotonic()
    with stop.signals(), tqdm(
        total=total_steps, initial=state.global_step, desc="training", unit="step", disable=not progress
    ) as bar:
        while state.epoch <= config.epochs and state.global_step < total_steps:
            generator.set_state(state.epoch_generator)
            batches = epoch_batches(features, config, generator)
            remaining = total_steps - (state.epoch - 1) * steps_per_epoch
            batches = batches[: remaining * config.gradient_accumulation]
            groups = _accumulation_groups(batches, config.gradient_accumulation)
            for group in groups[state.step_in_epoch :]:
                began = time.perf_counter()
                loss = sum(loop.micro_batch(features, indices) for indices in group)
                loop.step()
                state.epoch_loss_sum += float(loss)
                state.train_seconds += time.perf_counter() - began
                state.step_in_epoch += 1
                state.global_step += 1
                bar.update(1)
                if state.global_step % LOG_EVERY == 0:
                    bar.set_postfix(loss=f"{state.epoch_loss_sum / (state.step_in_epoch * config.gradient_accumulation):.4f}")
                if dev_sample and config.eval_every and state.global_step % config.eval_every == 0:
                    _record_point(run_dir, state, dev_sample.measure(loop), total_steps)
                if state.step_in_epoch == len(groups):
                    break
                if stop.reached(state.global_step):
                    checkpoint()
                    return TrainOutcome(run_dir, False, state.global_step, total_steps, stop.reason)
                if time.monotonic() - last_checkpoint >= 60 * checkpoint_minutes:
                    checkpoint()
                    last_checkpoint = time.monotonic()
            state.epoch_losses.append(state.epoch_loss_sum / len(batches))
            bar.set_postfix(loss=f"{state.epoch_losses[-1]:.4f}")
            _save(model, tokenizer, run_dir / f"epoch-{state.epoch}")
            state.epoch += 1
            state.step_in_epoch = 0
            state.epoch_loss_sum = 0.0
            state.epoch_generator = generator.get_state()
            if state.global_step < total_steps and stop.reached(state.global_step):
                checkpoint()
                return TrainOutcome(run_dir, False, state.global_step, total_steps, stop.reason)
    if dev_sample and not (config.eval_every and state.global_step % config.eval_every == 0):
        _record_point(run_dir, state, dev_sample.measure(loop), total_steps)
    _finish(config, loop, tokenizer, state, len(examples), len(features), total_steps)
    return TrainOutcome(run_dir, True, state.global_step, total_steps)


def _record_point(run_dir: Path, state: TrainingState, metrics: dict[str, float], total_steps: int) -> None:
    """One point of the learning curve: dev-sample scores against steps and training hours, with the load."""
    append_curve_point(run_dir, {
        "step": state.global_step,
        "of_steps": total_steps,
        "train_seconds": round(state.train_seconds, 2),
        "loss": round(_running_loss(state), 4),
        **{k: round(v, 2) for k, v in metrics.items()},
        "load_average": round(os.getloadavg()[0], 2),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })


def _running_loss(state: TrainingState) -> float:
    """The mean training loss of the epoch so far; at an epoch's end (its sum already reset) that epoch's mean."""
    if state.step_in_epoch == 0 and state.epoch_losses:
        return state.epoch_losses[-1]
    return state.epoch_loss_sum / max(state.step_in_epoch, 1)


def _finish(config, loop, tokenizer, state, num_examples, num_features, total_steps) -> None:
    """Save the final model and the run's summary, then drop the checkpoints: a finished run is not resumed."""
    run_dir = Path(config.output_dir)
    _save(loop.model, tokenizer, run_dir)
    summary = {
        "config": config_to_json(config),
        "device": str(loop.device),
        "autocast_dtype": str(loop.amp_dtype) if loop.amp_dtype else None,
        "num_examples": num_examples,
        "num_features": num_features,
        "optimizer_steps": total_steps,
        "epoch_losses": state.epoch_losses,
        "final_loss": state.epoch_losses[-1] if state.epoch_losses else None,
        "train_seconds": round(state.train_seconds, 2),
        "learning_curve": read_curve(run_dir),
    }
    (run_dir / "training_args.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    while (found := latest_checkpoint(run_dir)) is not None:
        shutil.rmtree(found)
    shutil.rmtree(run_dir / CACHE_FOLDER, ignore_errors=True)
