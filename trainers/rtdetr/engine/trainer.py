"""Plain training: ``train(cfg)`` runs the epochs of a spec and leaves TAO's results folder.

Per epoch: train (:mod:`.loop`), validate every ``validation_interval``
epochs and at the last one (the EMA weights when EMA is on), then on rank 0:
a line in metrics.jsonl, a RUNNING record in status.json, model_latest.pth,
model_epoch_NNN.pth every ``checkpoint_interval`` epochs, model_best.pth when
val_mAP50 improves, and TensorBoard scalars.  A run resumes from
``train.resume_training_checkpoint_path``, or else from
``<train dir>/model_latest.pth`` when it exists.

Multi-GPU: call :func:`launch` first; it re-runs the command under torchrun
when the spec asks for several processes.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import nn

from trainers.errors import UserError
from trainers.rtdetr.checkpoint import load_checkpoint, save_checkpoint
from trainers.rtdetr.data import set_epoch

from . import distributed, run_files
from .ema import ModelEMA
from .evaluation import evaluate_model
from .freeze import apply_freeze
from .loop import train_one_epoch
from .optim import build_lr_scheduler, build_optimizer
from .precision import check_precision, make_grad_scaler, select_device
from .progress import TensorBoardLog
from .reproducibility import determinism_state, restore_determinism, seed_everything, set_deterministic
from .resume import capture_rng_state, restore_rng_state, restore_training_state, rng_state_for_rank, training_payload
from .weights import load_pretrained_backbone, load_pretrained_model

MONITORED = "val_mAP50"
# Optimizer group settings that train.resume_with_spec_hyperparameters takes from the spec, not the checkpoint.
SPEC_GROUP_KEYS = ("initial_lr", "weight_decay", "momentum", "betas")
# The epoch's metrics.jsonl record, kept in its checkpoint too.
EPOCH_RECORD_KEY = "epoch_record"


@dataclass
class Parts:
    """What the epochs need besides the spec: built by :func:`build_parts`, or handed in (tests, distill)."""

    model: nn.Module
    criterion: nn.Module
    postprocessor: nn.Module
    train_loader: Any
    val_loader: Any
    val_ground_truth: Any          # COCO json path, dict or pycocotools COCO of the validation set
    category_ids: List[int]        # dataset category id of each contiguous label
    class_names: List[str]


def launch(cfg) -> None:
    """Re-run this command under torchrun when ``num_gpus * num_nodes > 1`` (returns when not needed).

    Without a GPU several processes would only share the same CPU cores, so a
    single-node run then stays in this process.
    """
    if cfg.train.num_nodes == 1 and not torch.cuda.is_available():
        return
    distributed.relaunch_under_torchrun(int(cfg.train.num_gpus), int(cfg.train.num_nodes))


def build_parts(cfg, log: Callable[[str], None] = print) -> Parts:
    """Model, loss, post-processor and loaders from the spec (DistributedSampler under DDP)."""
    from torch.utils.data.distributed import DistributedSampler

    from trainers.rtdetr.data import build_category_map, build_dataloader, build_dataset
    from trainers.rtdetr.data.build import coco_sources
    from trainers.rtdetr.model import PostProcessor, build_criterion, build_model

    main = distributed.is_main_process()
    quiet = log if main else None
    category_map = build_category_map(cfg, log=quiet)
    num_classes = max(int(cfg.dataset.num_classes), len(category_map))
    loaders = {}
    for split in ("train", "val"):
        dataset = build_dataset(cfg, split, category_map=category_map, log=quiet)
        sampler = None
        if distributed.is_distributed():
            sampler = DistributedSampler(dataset, shuffle=(split == "train"), seed=max(0, int(cfg.train.seed)))
        loaders[split] = build_dataloader(cfg, split, dataset=dataset, sampler=sampler, log=quiet)
    return Parts(model=build_model(cfg.model, num_classes), criterion=build_criterion(cfg.model, num_classes),
                 postprocessor=PostProcessor(num_select=cfg.model.num_select),
                 train_loader=loaders["train"], val_loader=loaders["val"],
                 val_ground_truth=coco_sources(cfg, "val")[0].json_file,
                 category_ids=list(category_map.category_ids), class_names=list(category_map.names))


def _reseed_shuffle(loader, seed: int, epoch: int) -> None:
    """Make epoch ``epoch``'s shuffle a function of (seed, epoch) only, so a resumed run sees the same order."""
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator) and seed >= 0:
        generator.manual_seed(seed * 100_003 + epoch)


def _resume_path(train_cfg, out_dir: Path) -> Optional[Path]:
    if train_cfg.resume_training_checkpoint_path:
        return Path(train_cfg.resume_training_checkpoint_path)
    latest = out_dir / run_files.LATEST_CHECKPOINT
    return latest if latest.is_file() else None


def _model_config(cfg) -> Dict[str, Any]:
    return dataclasses.asdict(cfg.model) if dataclasses.is_dataclass(cfg.model) else dict(vars(cfg.model))


def _check_supported(train_cfg) -> None:
    if str(train_cfg.checkpoint_interval_unit) != "epoch":
        raise UserError(f"train.checkpoint_interval_unit: {train_cfg.checkpoint_interval_unit!r} is not supported "
                        f"(supported: epoch)")


def train(cfg, parts: Optional[Parts] = None, on_epoch_end: Optional[Callable[[Dict[str, Any]], None]] = None,
          log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Train as the spec says; returns a summary (best val_mAP50 and epoch, checkpoints, last metrics).

    ``on_epoch_end(record)`` is called on every process after each epoch with
    the metrics.jsonl record (a sweep trial forwards it to Ray Tune).
    """
    train_cfg = cfg.train
    _check_supported(train_cfg)
    env = distributed.read_env()
    gpu_ids = list(getattr(train_cfg, "gpu_ids", []) or [])
    local_index = gpu_ids[env.local_rank] if not env.distributed and env.local_rank < len(gpu_ids) else env.local_rank
    device = select_device(int(train_cfg.num_gpus), local_index)
    precision = check_precision(train_cfg.precision, device)
    joined_here = env.distributed and not torch.distributed.is_initialized()
    distributed.init_distributed(device, env)
    main = env.is_main
    seed_everything(int(train_cfg.seed), env.rank)
    previous_determinism = determinism_state()
    set_deterministic(bool(train_cfg.cudnn.deterministic), bool(train_cfg.cudnn.benchmark))

    out_dir = run_files.train_dir(cfg.results_dir, train_cfg.results_dir)
    num_epochs = int(train_cfg.num_epochs)
    status = run_files.StatusLog(out_dir / run_files.STATUS_FILE, max_epoch=num_epochs)
    if main:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:   # e.g. results_dir names a file
            raise UserError(f"results_dir: cannot create {out_dir} ({error.strerror})") from None
        status.write("STARTED", "Starting training")
    tensorboard = TensorBoardLog(out_dir / "tensorboard", enabled=main)
    try:
        summary = _run(cfg, parts or build_parts(cfg, log), env, device, precision, out_dir, status, tensorboard,
                       on_epoch_end, log)
        if main:
            status.write("SUCCESS", "Training finished successfully" if not train_cfg.is_dry_run else "Dry run done")
        return summary
    except BaseException as error:
        if main:
            status.write("FAILURE", f"{type(error).__name__}: {error}", verbosity="ERROR")
        raise
    finally:
        tensorboard.close()
        restore_determinism(previous_determinism)   # a caller in the same process gets its settings back
        if joined_here:
            distributed.cleanup()


def _run(cfg, parts: Parts, env: distributed.DistEnv, device: torch.device, precision: str, out_dir: Path,
         status: run_files.StatusLog, tensorboard: TensorBoardLog, on_epoch_end, log) -> Dict[str, Any]:
    train_cfg, main = cfg.train, env.is_main
    model = parts.model
    if cfg.model.pretrained_backbone_path:
        report = load_pretrained_backbone(model, cfg.model.pretrained_backbone_path)
        if main:
            log(report.summary(f"model.pretrained_backbone_path {cfg.model.pretrained_backbone_path}"))
    if train_cfg.pretrained_model_path:
        report = load_pretrained_model(model, train_cfg.pretrained_model_path)
        if main:
            log(report.summary(f"train.pretrained_model_path {train_cfg.pretrained_model_path}"))
    frozen = apply_freeze(model, list(train_cfg.freeze or []), bool(cfg.model.train_backbone))
    # On CUDA, conv weights channels-last (NHWC; RTDETR.forward then feeds the batch NHWC too): tensor-core
    # convolutions under autocast.  Not on CPU: oneDNN's multi-threaded NHWC backward measured 1-10 % off the
    # exact gradients on some small backbone maps (tests/model/test_channels_last.py), where NCHW stays ~1e-5.
    model.to(device, memory_format=torch.channels_last if device.type == "cuda" else torch.contiguous_format)
    criterion = parts.criterion.to(device)
    postprocessor = parts.postprocessor.to(device)

    ema = None
    if train_cfg.enable_ema:
        ema = ModelEMA(model, decay=float(train_cfg.ema.decay))
        if train_cfg.ema.cpu_offload:
            ema.module.to("cpu")
    optimizer = build_optimizer(model, train_cfg.optim)
    model = distributed.wrap_ddp(model, device, find_unused_parameters=True)
    accumulation = max(1, int(getattr(train_cfg, "grad_accumulation_steps", 1)))
    iters_per_epoch = math.ceil(len(parts.train_loader) / accumulation)
    num_epochs = int(train_cfg.num_epochs)
    lr_scheduler = build_lr_scheduler(optimizer, train_cfg.optim, iters_per_epoch=iters_per_epoch,
                                      num_epochs=num_epochs)
    grad_scaler = make_grad_scaler(precision, device)

    start_epoch, global_step, best_metric, best_epoch = 0, 0, None, None
    resume_from = _resume_path(train_cfg, out_dir)
    if resume_from is not None:
        # The schedule's base lrs always come from the spec; the optimizer state brings back the rest.
        spec_hyperparameters = [{k: g[k] for k in SPEC_GROUP_KEYS if k in g} for g in optimizer.param_groups]
        try:
            resumed = load_checkpoint(resume_from, map_location=device)
            if "optimizer" not in resumed:
                raise UserError(f"cannot resume from {resume_from}: it holds weights only, no training state (a "
                                f"finished sweep trial's kept checkpoint); start from its weights with "
                                f"train.pretrained_model_path={resume_from} instead")
            point = restore_training_state(resumed, model=model, ema=ema,
                                           optimizer=optimizer, lr_scheduler=lr_scheduler, grad_scaler=grad_scaler)
        except (RuntimeError, KeyError, ValueError) as error:
            raise UserError(f"cannot resume from {resume_from}: it does not fit this spec "
                            f"({str(error).strip().splitlines()[0]}); use another results_dir or remove the file"
                            ) from None
        start_epoch, global_step, best_metric, best_epoch = (point.start_epoch, point.global_step,
                                                             point.best_metric, point.best_epoch)
        if train_cfg.resume_with_spec_hyperparameters:  # population based training's "explore" step
            for group, values in zip(optimizer.param_groups, spec_hyperparameters):
                group.update(values)
        rng = rng_state_for_rank(point.rng, env.rank)
        if rng is not None:
            restore_rng_state(rng)
        if main:
            run_files.truncate_jsonl(out_dir / run_files.METRICS_FILE, keep=lambda r: r.get("epoch", 0) < start_epoch)
            _restore_last_record(out_dir / run_files.METRICS_FILE, resumed.get(EPOCH_RECORD_KEY), start_epoch)
            status.write("RUNNING", f"Resumed from {resume_from} at epoch {start_epoch}", epoch=start_epoch)
            log(f"resumed from {resume_from}: continuing at epoch {start_epoch}")

    summary: Dict[str, Any] = {"train_dir": str(out_dir), "best_epoch": best_epoch, MONITORED: best_metric,
                               "epochs_run": 0, "last": None,
                               "best_checkpoint": str(out_dir / run_files.BEST_CHECKPOINT),
                               "latest_checkpoint": str(out_dir / run_files.LATEST_CHECKPOINT)}
    if resume_from is not None and main:
        done = run_files.read_jsonl(out_dir / run_files.METRICS_FILE)
        summary["last"] = done[-1] if done else None
    if train_cfg.is_dry_run:
        return summary

    validation_interval = max(1, int(train_cfg.validation_interval))
    checkpoint_interval = max(1, int(train_cfg.checkpoint_interval))
    for epoch in range(start_epoch, num_epochs):
        epoch_started = time.perf_counter()
        _reseed_shuffle(parts.train_loader, int(train_cfg.seed), epoch)
        set_epoch(parts.train_loader, epoch)
        stats = train_one_epoch(
            model=model, criterion=criterion, optimizer=optimizer, lr_scheduler=lr_scheduler,
            grad_scaler=grad_scaler, ema=ema, loader=parts.train_loader, device=device, precision=precision,
            epoch=epoch, global_step=global_step, accumulation_steps=accumulation,
            clip_grad_norm=float(train_cfg.clip_grad_norm or 0.0),
            ema_every_n_steps=int(train_cfg.ema.every_n_steps), frozen=frozen)
        global_step = stats.global_step

        metrics = None
        validate = parts.val_loader is not None and ((epoch + 1) % validation_interval == 0 or epoch + 1 == num_epochs)
        if validate:
            use_raw = ema is None or train_cfg.ema.validate_original_weights
            validated = distributed.unwrap_model(model) if use_raw else ema.module.to(device)
            metrics = evaluate_model(validated, postprocessor, parts.val_loader, parts.val_ground_truth,
                                     parts.category_ids, device, precision)
            if ema is not None and train_cfg.ema.cpu_offload:
                ema.module.to("cpu")

        lrs = {group.get("name", str(i)): group["lr"] for i, group in enumerate(optimizer.param_groups)}
        record: Dict[str, Any] = {
            "epoch": epoch, "global_step": global_step, **stats.losses,
            "lr": lrs.get("head", next(iter(lrs.values()))), "lr_backbone": lrs.get("backbone"),
            "val_mAP": metrics["val_mAP"] if metrics else None,
            "val_mAP50": metrics["val_mAP50"] if metrics else None,
            "val_mAP75": metrics["val_mAP75"] if metrics else None,
            "images_per_second": stats.images_per_second * env.world_size,
            "train_seconds": stats.seconds,
            "wall_seconds": time.perf_counter() - epoch_started,
        }
        improved = metrics is not None and (best_metric is None or metrics[MONITORED] > best_metric)
        if improved:
            best_metric, best_epoch = metrics[MONITORED], epoch
        rng = distributed.all_gather_objects(capture_rng_state())
        if main:
            _write_epoch(cfg, parts, out_dir, status, tensorboard, record, metrics, model, ema, optimizer,
                         lr_scheduler, grad_scaler, epoch, global_step, best_metric, best_epoch, rng,
                         save_epoch=(epoch + 1) % checkpoint_interval == 0 or epoch + 1 == num_epochs,
                         save_best=improved)
            log(_epoch_line(record, num_epochs))
        distributed.barrier()
        summary.update({"best_epoch": best_epoch, MONITORED: best_metric, "last": record,
                        "epochs_run": summary["epochs_run"] + 1})
        if on_epoch_end is not None:
            on_epoch_end(record)
    return summary


def _write_epoch(cfg, parts: Parts, out_dir: Path, status: run_files.StatusLog, tensorboard: TensorBoardLog,
                 record: Dict[str, Any], metrics: Optional[Dict[str, Any]], model, ema, optimizer, lr_scheduler,
                 grad_scaler, epoch: int, global_step: int, best_metric, best_epoch, rng, *, save_epoch: bool,
                 save_best: bool) -> None:
    """Rank 0's files for one epoch: checkpoints, then the metrics line and status record, TensorBoard.

    The metrics line comes last: whoever reads it (a sweep trial) finds the
    epoch's checkpoints complete.  The record also rides in the checkpoint, so
    a crash between the two puts the line back on resume.
    """
    payload = training_payload(
        model=model, ema=ema, optimizer=optimizer, lr_scheduler=lr_scheduler, grad_scaler=grad_scaler, epoch=epoch,
        global_step=global_step, best_metric=best_metric, best_epoch=best_epoch, rng=rng,
        model_config=_model_config(cfg), num_classes=_num_classes(parts), category_ids=parts.category_ids,
        class_names=parts.class_names)
    payload[EPOCH_RECORD_KEY] = run_files.json_safe(record)
    # One serialization, the other names linked to it.  The latest last: a crash before it leaves the
    # previous epoch to resume from, which trains this one again and rewrites the others.
    names = [run_files.epoch_checkpoint_name(epoch)] if save_epoch else []
    names += [run_files.BEST_CHECKPOINT] if save_best else []
    save_checkpoint(payload, *(out_dir / name for name in names + [run_files.LATEST_CHECKPOINT]))
    run_files.append_jsonl_atomic(out_dir / run_files.METRICS_FILE, record)
    kpi = None
    if metrics is not None:
        kpi = {"val_mAP": metrics["val_mAP"], "val_mAP50": metrics["val_mAP50"], "val_mAP75": metrics["val_mAP75"],
               "train_loss": record.get("loss")}
    status.write("RUNNING", f"Epoch {epoch} finished", epoch=epoch, kpi=kpi, time_per_epoch=record["wall_seconds"])
    tensorboard.scalars({k: v for k, v in record.items() if k != "epoch"}, step=epoch)


def _restore_last_record(path: Path, record: Optional[Dict[str, Any]], start_epoch: int) -> None:
    """Put back the resumed checkpoint's metrics line when a crash came between the two writes."""
    if not isinstance(record, dict) or record.get("epoch") != start_epoch - 1:
        return
    done = run_files.read_jsonl(path)
    if not done or done[-1].get("epoch", -1) < start_epoch - 1:
        run_files.append_jsonl_atomic(path, record)


def _num_classes(parts: Parts) -> int:
    """The head's number of outputs (may exceed the categories: TAO's "+1" habit)."""
    head = getattr(distributed.unwrap_model(parts.model), "num_classes", None)
    return int(head) if head is not None else len(parts.category_ids)


def _epoch_line(record: Dict[str, Any], num_epochs: int) -> str:
    val = "" if record["val_mAP50"] is None else (
        f"  val_mAP {record['val_mAP']:.4f}  val_mAP50 {record['val_mAP50']:.4f}")
    return (f"epoch {record['epoch']}/{num_epochs - 1}  loss {record['loss']:.4f}  lr {record['lr']:.3g}{val}  "
            f"{record['images_per_second']:.1f} img/s  {record['wall_seconds']:.1f}s")
