"""The eval loop: benchmark samples → prompts + decoded frames → backend → scorers → result store.

Reads top to bottom: resolve the config, load every benchmark's samples (fail fast on bad data before loading a
model), then per benchmark: open the store (resume), and for each batch decode frames (the next batch is decoded
in the background while the model generates), generate with upstream's retry rule, score, append.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from reasonkit.config import EvalConfig, load_config, preset_path
from reasonkit.errors import DataError, ReasonkitError
from reasonkit.evaluate.records import (
    add_usage,
    base_record,
    effective_generation,
    error_record,
    eval_manifest,
    output_tokens,
    prompt_hash,
    report_error_records,
    usage_of,
)
from reasonkit.evaluate.store import ResultStore
from reasonkit.evaluate.usage import record_usage
from reasonkit.prefetch import prefetch
from reasonkit.prompts import build_messages
from reasonkit.scoring.extract import reasoning_text
from reasonkit.types import FrameSpec, GenRequest, Sample

RETRY_EXTRA_TOKENS = 256
RETRY_EXTRA_TEMPERATURE = 0.05
RETRY_MAX_TEMPERATURE = 0.9


# ------------------------------------------------------------------------------------------------ config
def resolve_config(benchmarks: list[str], config: str | None, overrides: list[str], **flags: Any) -> EvalConfig:
    """Preset (``--config``, else ``benchmarks/<name>.yaml`` for a single benchmark) ← ``--set`` ← flags."""
    path = preset_path(config) if config else None
    if path is None and len(benchmarks) == 1 and preset_path(benchmarks[0]).is_file():
        path = preset_path(benchmarks[0])
    flag_keys = {"model": "model.model_name", "backend": "model.backend", "data_dir": "data_dir",
                 "results_dir": "results_dir", "limit": "evaluation.limit", "batch_size": "evaluation.batch_size",
                 "seed": "evaluation.seed", "seeds": "evaluation.seeds", "answer_type": "evaluation.answer_type",
                 "resume": "evaluation.resume", "retry_errors": "evaluation.retry_errors"}
    flag_overrides = [f"{flag_keys[k]}={json.dumps(str(v) if isinstance(v, Path) else v)}"
                      for k, v in flags.items() if v is not None]
    base: dict[str, Any] = {"datasets": list(benchmarks)} if benchmarks else {}
    if path is None:
        base = _benchmark_defaults(benchmarks, base)
    cfg = load_config(EvalConfig, path, [*overrides, *flag_overrides], base=base or None)
    if benchmarks:  # benchmarks named on the command line win over the preset's list
        cfg.datasets = list(benchmarks)
    return cfg


def _benchmark_defaults(benchmarks: list[str], base: dict[str, Any]) -> dict[str, Any]:
    """Without a preset file, a benchmark's own ``eval_defaults`` (preset-shaped, e.g. ``{"generation":
    {"max_tokens": 256}}``) come before reasonkit's; a benchmark that declares none is told about on stderr."""
    import sys

    from reasonkit.config import deep_merge
    from reasonkit.plugins import get_benchmark

    for name in benchmarks:
        defaults = getattr(get_benchmark(name), "eval_defaults", None)
        if defaults:
            base = deep_merge(base, defaults)
        else:
            print(f"note: benchmark '{name}' has no preset (benchmarks/{name}.yaml) and declares no eval_defaults: "
                  f"using reasonkit's generation defaults (max_retries 10, max_tokens 1024, temperature 0.6)",
                  file=sys.stderr)
    return base


def eval_from_cli(benchmarks: list[str], config: str | None, overrides: list[str], *,
                  wandb_project: str | None = None, lm_eval_tasks: list[str] | None = None,
                  lm_eval_include: str | None = None, **flags: Any) -> None:
    if not benchmarks and not config and not lm_eval_tasks:
        raise ReasonkitError("name a benchmark (e.g. `reasonkit eval robovqa`), pass --config or --lm-eval-tasks")
    launch = {k: flags.pop(k) for k in LAUNCH_FLAGS if k in flags}  # data-parallel: reasonkit/evaluate/shard.py
    cfg = resolve_config(benchmarks, config, overrides, **flags)
    stores = run_or_launch(cfg, launch) if cfg.datasets or not lm_eval_tasks else []
    if stores is None:  # a rank of a data-parallel run: the launching process (or `score`) reports
        return
    if wandb_project and stores:
        from reasonkit.train.periodic_eval import log_eval_to_wandb

        log_eval_to_wandb(stores, project=wandb_project, experiment=f"eval-{stores[0].path.parents[2].name}",
                          out_dir=Path(cfg.results_dir), config=cfg.model_dump())
    from reasonkit.scoring.report import print_summary

    print_summary(stores)
    if lm_eval_tasks:  # text tasks on the same model; results beside reasonkit's, under the model's folder
        from reasonkit.evaluate.lmeval import lm_eval_from_config

        lm_eval_from_config(cfg, lm_eval_tasks, include_path=lm_eval_include)
    report_error_records(stores)


LAUNCH_FLAGS = ("nproc_per_node", "nnodes", "node_rank", "rdzv_endpoint", "rdzv_id")


def run_or_launch(cfg: EvalConfig, launch: dict[str, Any]) -> list[ResultStore] | None:
    """Run here, or N ranks under torchrun (--nproc-per-node/--nnodes) and return their merged stores; None in a
    rank of a data-parallel run."""
    from reasonkit.evaluate import shard

    if (launch.get("nproc_per_node") or 1) * (launch.get("nnodes") or 1) > 1 and not os.environ.get(
            "REASONKIT_LAUNCHED"):
        if "eval" not in sys.argv[1:2]:  # torchrun re-runs the command line: called from code, there is none
            raise ReasonkitError("--nproc-per-node/--nnodes relaunch the `reasonkit eval` command line; from Python, "
                                 "start the script under torchrun instead")
        shard.relaunch(sys.argv[1:], **{k: launch.get(k) for k in LAUNCH_FLAGS})
        stores = stores_of(cfg)  # every rank is done: report as one process would
        for store in stores:
            record_usage(store, cfg)
        return stores
    stores = run_eval(cfg)
    world = shard.world_from_env()
    if not world.parallel:
        return stores
    if not os.environ.get("REASONKIT_LAUNCHED"):  # started by torchrun/srun directly: report this rank's part
        if world.rank == 0:
            print(f"rank 0 of {world.size} done; `reasonkit score {cfg.results_dir}` merges every rank's shard "
                  "once all have finished", file=sys.stderr)
        for store in stores:
            shard.check_own_shard(store)
    return None


def stores_of(cfg: EvalConfig, fingerprint: str | None = None) -> list[ResultStore]:
    """The result store of each (benchmark, seed) of ``cfg``, benchmark-major."""
    from reasonkit.backends.loading import model_fingerprint

    fingerprint = fingerprint or model_fingerprint(cfg.model.model_name)
    e = cfg.evaluation
    return [ResultStore.for_run(cfg.results_dir, cfg.model.model_name, fingerprint, name, e.answer_type, seed)
            for name in cfg.datasets for seed in e.seed_list()]


def per_seed_configs(cfg: EvalConfig) -> list[EvalConfig]:
    """One config per seed of the run, each exactly what ``--seed k`` alone would resolve to (so its records,
    manifest and config hash are a single-seed run's, and either kind of run resumes the other)."""
    if cfg.evaluation.seeds is None:
        return [cfg]
    out = []
    for seed in cfg.evaluation.seeds:
        one = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"seed": seed, "seeds": None})})
        one._set_keys = cfg._set_keys
        out.append(one)
    return out


# ------------------------------------------------------------------------------------------------- runner
def run_eval(cfg: EvalConfig, *, backend=None, progress: bool = True) -> list[ResultStore]:
    """Evaluate ``cfg.model`` on every dataset of ``cfg``; returns the result stores written."""
    from reasonkit.backends.loading import check_model_dir, model_fingerprint
    from reasonkit.plugins import get_backend_factory, get_benchmark, get_scorer

    if not cfg.data_dir:
        raise ReasonkitError("no data directory: pass --data-dir or set data_dir in the preset")
    data_dir = Path(cfg.data_dir)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    benchmarks = {name: get_benchmark(name) for name in cfg.datasets}
    scorers = [get_scorer(name) for name in cfg.evaluation.scorers]
    samples = {name: _limit(bench.load(data_dir), cfg.evaluation.limit) for name, bench in benchmarks.items()}
    model = cfg.model.model_name
    factory = get_backend_factory(cfg.model.backend) if backend is None else type(backend)
    remote = getattr(factory, "remote", False)  # an API model: its name is all there is to check and hash
    if not remote:
        check_model_dir(model)
    fingerprint = model_fingerprint(model)
    from reasonkit.evaluate import shard

    world, group = shard.world_from_env(), None
    if world.parallel:  # one replica per rank, each on its own GPUs; the plan travels over gloo
        if not remote:
            shard.pin_devices(world, cfg.model.tp_size)
        group = shard.Group(world)
    try:
        return _run_benchmarks(cfg, backend, factory, model, fingerprint, benchmarks, samples, scorers, group,
                               progress=progress and world.rank == 0)
    finally:
        if group is not None:
            group.close()


def _run_benchmarks(cfg, backend, factory, model, fingerprint, benchmarks, samples, scorers, group, *,
                    progress: bool) -> list[ResultStore]:
    from reasonkit.evaluate import shard

    if backend is None:
        from reasonkit.backends.loading import backend_options

        options = backend_options(cfg.model.backend, factory, cfg.model, explicit=cfg._set_keys,
                                  seed=cfg.evaluation.seed)  # refuses command-line
        # keys the backend does not take; backends that read their own config keys build from the whole config
        backend = factory.from_eval_config(cfg) if hasattr(factory, "from_eval_config") else factory(model, **options)
    from reasonkit.families import detect_family, frame_spec_for

    family = detect_family(model, cfg.model.revision)  # after the backend loaded it: a hub id is cached by now
    seeds = per_seed_configs(cfg)
    stores = iter(stores_of(cfg, fingerprint))
    written = []
    for name, bench in benchmarks.items():
        spec = frame_spec_for(cfg.frames.to_spec(bench.frame_spec) if cfg.frames else bench.frame_spec, family)
        runs = []  # (store, config, questions left) per seed
        for one in seeds:
            store = next(stores)
            manifest = eval_manifest(one, name, spec, fingerprint, len(samples[name]), cfg.model.backend)
            if group is not None:  # rank 0 prepares the store and splits the questions left by clip
                store, todo = shard.plan(group, store, manifest, samples[name], resume=cfg.evaluation.resume,
                                         retry_errors=cfg.evaluation.retry_errors)
            else:
                done = store.open(manifest, resume=cfg.evaluation.resume)
                if cfg.evaluation.retry_errors and cfg.evaluation.resume and store.drop_error_records():
                    done = store.recorded_ids()
                todo = [s for s in samples[name] if s.id not in done]
            runs.append(SeedRun(store, one, {s.id for s in todo}))
        _evaluate(samples[name], runs, name, spec, cfg, backend, scorers, progress=progress)
        for run in runs:
            if group is None:  # ranks share the manifest: the launching process writes the merged usage
                record_usage(run.store, run.cfg)
            written.append(run.store)
    return written


@dataclasses.dataclass
class SeedRun:
    store: ResultStore
    cfg: EvalConfig  # this seed's config (evaluation.seed = the seed)
    todo: set[str]  # ids of the questions it still needs


def _limit(samples: list[Sample], limit: int | None) -> list[Sample]:
    return samples[:limit] if limit else samples


def _evaluate(samples: list[Sample], runs: list[SeedRun], name, spec, cfg, backend, scorers, *,
              progress: bool) -> None:
    """Every question some seed still needs, in batches of ``batch_size`` questions: a clip is decoded once and
    asked once per seed that needs it, all in one backend call (a backend shares the clip's vision work and the
    prompt's prefill across the seeds); each seed's records go to its own store."""
    todo = [s for s in samples if any(s.id in run.todo for run in runs)]
    size = cfg.evaluation.batch_size
    batches = [todo[i:i + size] for i in range(0, len(todo), size)]
    decoded = prefetch(lambda batch: _decode_batch(batch, spec), batches, ahead=1)  # the next batch decodes
    with _progress(name, sum(len(run.todo) for run in runs), enabled=progress) as bar:
        for batch, frames in zip(batches, decoded):
            jobs = [(s, f, run) for s, f in zip(batch, frames) for run in runs if s.id in run.todo]
            records = _run_batch([(s, f, run.cfg) for s, f, run in jobs], spec, backend, scorers)
            for run in runs:
                run.store.append([r for (_, _, owner), r in zip(jobs, records) if owner is run])
            bar(len(jobs))


def _decode_batch(batch: list[Sample], spec: FrameSpec) -> list[Any]:
    from reasonkit.media import load_frames

    out = []
    for sample in batch:
        try:
            if sample.video is None:
                raise DataError(f"{sample.id}: no video")
            out.append(load_frames(sample.video, spec))
        except DataError as exc:  # recorded as an error record: counted in coverage, never dropped
            out.append(exc)
    return out


def _run_batch(jobs: list[tuple[Sample, Any, EvalConfig]], spec, backend, scorers) -> list[dict[str, Any]]:
    """One record per (question, its frames or the error decoding them, the config of its seed), in order."""
    ok = [i for i, (_, f, _) in enumerate(jobs) if not isinstance(f, Exception)]
    records: dict[int, dict[str, Any]] = {i: error_record(s, f, spec, c) for i, (s, f, c) in enumerate(jobs)
                                          if isinstance(f, Exception)}
    if ok:
        requests = [_request(jobs[i][0], jobs[i][1], jobs[i][2]) for i in ok]
        answer_type = jobs[ok[0]][2].evaluation.answer_type
        max_retries = jobs[ok[0]][2].generation.max_retries
        start = time.perf_counter()
        outputs, retries, tokens, usage = generate_with_retries(backend, requests, [jobs[i][0] for i in ok],
                                                                scorers[0], answer_type, max_retries)
        per_sample = (time.perf_counter() - start) / len(ok)
        for i, request, output, n_retry, n_tok, use in zip(ok, requests, outputs, retries, tokens, usage):
            sample, frame, cfg = jobs[i]
            if use.get("error"):  # the backend's request finally failed (API): an error record, asked again on
                records[i] = {**error_record(sample, use["error"], spec, cfg), "retries": n_retry,
                              "usage": use["usage"]}  # --retry-errors
                continue
            judgements = {sc.name: sc.score(output, sample, answer_type) for sc in scorers}
            primary = judgements[scorers[0].name]
            extracted = {j.extracted for j in judgements.values()}
            records[i] = {
                **base_record(sample, spec, cfg), "status": "ok", "error": None,
                "prompt_hash": prompt_hash(request, spec),
                "frame_timestamps": frame.timestamps, "sampled_fps": round(frame.fps, 6),
                "frame_shape": list(frame.array.shape),
                "output": output, "reasoning": reasoning_text(output),
                "extracted": primary.extracted, "correct": primary.correct,
                "scores": {k: {"extracted": j.extracted, "correct": j.correct} for k, j in judgements.items()},
                "scorers_disagree": len(extracted) > 1,
                "retries": n_retry, "output_tokens": n_tok, "seconds": round(per_sample, 4),
                "usage": use["usage"],
            }
    return [records[i] for i in range(len(jobs))]


def generate_with_retries(backend, requests: list[GenRequest], samples: list[Sample], scorer, answer_type: str,
                          max_retries: int) -> tuple[list[str], list[int], list[int], list[dict[str, Any]]]:
    """Upstream's retry rule: only unparseable answers are asked again, up to ``max_retries`` times; retry k
    allows 256·k more tokens and 0.05·k more temperature (capped at 0.9). The last list holds, per request, the
    token usage summed over its attempts and the error of a request that finally failed (no retry asks it again:
    ``--retry-errors`` on resume does)."""
    results = backend.generate(requests)
    outputs = [r.texts[0] for r in results]
    tokens = [output_tokens(r) for r in results]
    retries = [0] * len(requests)
    usage = [{"error": r.error, "usage": usage_of(r)} for r in results]
    for k in range(1, max_retries + 1):
        unparsed = [i for i, (s, out) in enumerate(zip(samples, outputs))
                    if not usage[i]["error"] and scorer.score(out, s, answer_type).extracted is None]
        if not unparsed:
            break
        again = [dataclasses.replace(
            requests[i], max_tokens=requests[i].max_tokens + RETRY_EXTRA_TOKENS * k,
            temperature=min(requests[i].temperature + RETRY_EXTRA_TEMPERATURE * k, RETRY_MAX_TEMPERATURE),
            seed=None if requests[i].seed is None else requests[i].seed + k) for i in unparsed]
        for i, result in zip(unparsed, backend.generate(again)):
            outputs[i], retries[i] = result.texts[0], k
            tokens[i] = output_tokens(result)
            usage[i] = {"error": result.error, "usage": add_usage(usage[i]["usage"], usage_of(result))}
    return outputs, retries, tokens, usage


def _request(sample: Sample, frames, cfg: EvalConfig) -> GenRequest:
    sampling = effective_generation(cfg).sampling(seed=cfg.evaluation.seed)
    return GenRequest.of(build_messages(sample, cfg.evaluation.answer_type), frames, sampling)


@contextlib.contextmanager
def _progress(name: str, total: int, *, enabled: bool):
    """The shared progress bar with samples/s; a no-op when disabled."""
    from reasonkit.progress import progress_bar

    with progress_bar(enabled=enabled) as bar:
        task, start, done = bar.task(name, total), time.perf_counter(), 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            task(n, info=f"{done / max(time.perf_counter() - start, 1e-9):.2f} samples/s")

        yield advance
