"""Data-parallel eval on CPU: `reasonkit eval --nproc-per-node 2` (torchrun, gloo) records every question exactly
once in per-rank shard files, a clip's questions on one rank; a kill -9 of one rank and resumes with a different
number of processes still end with every question exactly once; `score` merges the shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from fault_server import FaultServer
from helpers import make_upstream_benchmark

from reasonkit.evaluate.shard import World, shard_by_clip, world_from_env
from reasonkit.evaluate.store import _read_records, find_stores
from reasonkit.types import Sample

QUESTIONS_PER_CLIP = [3, 1, 2, 2, 1, 1]  # 10 questions on 6 clips


def samples(counts: list[int]) -> list[Sample]:
    return [Sample(id=f"c{i}#{j}", dataset="d", video=Path(f"clips/c{i}.mp4"), question=f"Q{i}-{j}?")
            for i, n in enumerate(counts) for j in range(n)]


def test_shards_are_balanced_by_clip_and_deterministic():
    all_samples = samples(QUESTIONS_PER_CLIP)
    shards = shard_by_clip(all_samples, 2)
    assert [len(s) for s in shards] == [5, 5]
    owner = {s.video: r for r, shard in enumerate(shards) for s in shard}
    assert all(owner[s.video] == r for r, shard in enumerate(shards) for s in shard)  # clips never split
    assert sorted(s.id for shard in shards for s in shard) == sorted(s.id for s in all_samples)
    assert [[s.id for s in shard] for shard in shard_by_clip(list(all_samples), 2)] == \
        [[s.id for s in shard] for shard in shards]
    assert [len(s) for s in shard_by_clip(all_samples, 4)] == [3, 3, 2, 2]
    assert [len(s) for s in shard_by_clip(all_samples[:1], 3)] == [1, 0, 0]  # more ranks than clips: idle ranks
    for shard in shards:  # each shard keeps the benchmark's order
        assert [s.id for s in shard] == [s.id for s in all_samples if s in shard]


def test_world_from_torchrun_or_slurm_variables():
    assert world_from_env({}) == World(0, 1, 0, 1)
    assert world_from_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}) == \
        World(3, 8, 1, 2)
    assert world_from_env({"SLURM_PROCID": "5", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1",
                           "SLURM_NTASKS_PER_NODE": "8(x2)"}) == World(5, 16, 1, 8)


def _data(root: Path) -> Path:
    entries = [{"video": f"clips/c{i}.mp4", "qa_pairs": [
        {"question": f"Q{i}-{j}?", "index2ans": {"A": "yes", "B": "no"}, "answer": "AB"[j % 2]} for j in range(n)]}
        for i, n in enumerate(QUESTIONS_PER_CLIP)]
    make_upstream_benchmark(root, "robovqa", entries, {f"clips/c{i}.mp4": 8 for i in range(len(QUESTIONS_PER_CLIP))})
    return root


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "reasonkit", *args], env=env, capture_output=True, text=True,
                          timeout=300, **kw)


def _ids_by_file(results: Path) -> dict[str, list[str]]:
    (store,) = find_stores(results)
    return {p.name: [r["id"] for r in _read_records(p)] for p in store.files()}


def test_two_ranks_record_every_question_once_and_score_merges(tiny_model_dir, tmp_path):
    data, results = _data(tmp_path / "data"), tmp_path / "results"
    args = ["eval", "robovqa", "--model", str(tiny_model_dir), "--data-dir", str(data), "--results-dir",
            str(results), "--batch-size", "2", "--set", "generation.max_tokens=2", "--set",
            "generation.max_retries=0"]
    proc = _run([*args, "--nproc-per-node", "2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    files = _ids_by_file(results)
    assert sorted(files) == ["rank00000.jsonl", "rank00001.jsonl"]  # no main file: the ranks wrote it all
    ids = [i for f in files.values() for i in f]
    assert len(ids) == 10 and len(set(ids)) == 10
    assert [len(f) for f in files.values()] == [5, 5]
    clips = {f: {i.split("#")[0] for i in ids} for f, ids in files.items()}
    assert not clips["rank00000.jsonl"] & clips["rank00001.jsonl"]  # a clip's questions stay on one rank
    assert "robovqa" in proc.stdout  # the launching process printed the merged table
    (store,) = find_stores(results)
    assert store.manifest()["usage"]["requests"] == 10  # the merged usage, written after the ranks
    again = _run(args)  # resume with one process: nothing left to ask
    assert again.returncode == 0, again.stderr[-2000:]
    assert _ids_by_file(results) == files
    score = _run(["score", str(results), "--json"])
    (row,) = [r for r in json.loads(score.stdout) if r["dataset"] == "robovqa"]
    assert (row["scored"], row["total"], row["coverage"]) == (10, 10, 100.0)


def _worker(launcher: subprocess.Popen, rank: int):
    import psutil

    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "reasonkit" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


def test_kill_9_of_one_rank_then_resume_with_another_rank_count(tmp_path):
    """The `openai` backend against the local fault server: cheap, and slow enough per question to kill mid-run."""
    data, results = _data(tmp_path / "data"), tmp_path / "results"
    with FaultServer(slow_s=0.8) as server:  # rank 1's three questions take 2.4 s: time to kill it mid-run
        for i, n in enumerate(QUESTIONS_PER_CLIP):
            for j in range(n):
                server.script(f"Q{i}-{j}?", "slow")
        args = ["eval", "robovqa", "--model", "api-model", "--backend", "openai", "--data-dir", str(data),
                "--results-dir", str(results), "--batch-size", "1", "--set", f"model.base_url={server.base_url}",
                "--set", "generation.max_retries=0"]
        first = _run([*args, "--limit", "3"])  # one process writes the first three questions to the main file
        assert first.returncode == 0, first.stderr[-2000:]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        launcher = subprocess.Popen([sys.executable, "-m", "reasonkit", *args, "--nproc-per-node", "2"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        shard1 = next(iter(find_stores(results))).shard_dir / "rank00001.jsonl"
        deadline, killed = time.time() + 120, None
        while time.time() < deadline and launcher.poll() is None:
            if shard1.exists() and len(_read_records(shard1)) >= 1:
                killed = _worker(launcher, 1)
                if killed is not None:
                    os.kill(killed.pid, signal.SIGKILL)
                    break
            time.sleep(0.05)
        _, err = launcher.communicate(timeout=120)
        assert killed is not None, f"rank 1 finished before it could be killed: {err[-2000:]}"
        assert launcher.returncode != 0  # torchrun saw a rank die and stopped the other
        before = _ids_by_file(results)
        assert len(before["seed1.jsonl"]) == 3 and 1 <= len(before["rank00001.jsonl"]) < 3
        assert sum(map(len, before.values())) < 10
        resumed = _run(args)  # one process finishes what both ranks left
        assert resumed.returncode == 0, resumed.stderr[-2000:]
    after = _ids_by_file(results)
    ids = [i for f in after.values() for i in f]
    assert Counter(ids).most_common(1)[0][1] == 1 and len(ids) == 10  # every question exactly once
    for name, kept in before.items():
        assert after[name][:len(kept)] == kept  # nothing written before the kill was lost or rewritten
    for kept in before.values():  # a recorded question is never asked again (one in flight at the kill may be)
        for rid in kept:
            clip, j = rid.split("#")
            assert server.attempts[f"Q{clip[1:]}-{j}?"] == 1, rid


def test_ranks_started_by_srun_directly(tmp_path):
    """Two tasks as `srun` starts them (SLURM_PROCID/SLURM_NTASKS, MASTER_ADDR/PORT from the batch script): each
    rank reports only its own shard; the shards together hold every question once."""
    import socket

    data, results = _data(tmp_path / "data"), tmp_path / "results"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with FaultServer() as server:
        args = [sys.executable, "-m", "reasonkit", "eval", "robovqa", "--model", "api-model", "--backend", "openai",
                "--data-dir", str(data), "--results-dir", str(results), "--set", f"model.base_url={server.base_url}",
                "--set", "generation.max_retries=0"]
        procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={
            **{k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}, "SLURM_PROCID": str(r),
            "SLURM_NTASKS": "2", "SLURM_LOCALID": str(r), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
            for r in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "rank 0 of 2 done; `reasonkit score" in outs[0][1] and "robovqa" not in outs[1][0]
    files = _ids_by_file(results)
    assert sorted(files) == ["rank00000.jsonl", "rank00001.jsonl"]
    assert sorted(i for f in files.values() for i in f) == sorted(f"c{i}#{j}" for i, n in
                                                                  enumerate(QUESTIONS_PER_CLIP) for j in range(n))


def test_launched_ranks_report_error_records_once_with_exit_3(tmp_path):
    data, results = _data(tmp_path / "data"), tmp_path / "results"
    with FaultServer() as server:
        server.script("Q0-1?", "500")
        proc = _run(["eval", "robovqa", "--model", "api-model", "--backend", "openai", "--data-dir", str(data),
                     "--results-dir", str(results), "--set", f"model.base_url={server.base_url}",
                     "--set", "model.request_retries=0", "--set", "generation.max_retries=0",
                     "--nproc-per-node", "2"])
    assert proc.returncode == 3, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith(("error records:", "error:"))]
    assert lines[0].startswith("error records: 1 question(s): API request failed: HTTP 500")
    assert lines[1].startswith("error: 1 of 10 questions are error records") and len(lines) == 2


def test_each_rank_gets_its_own_gpus(monkeypatch):
    from reasonkit.errors import ReasonkitError
    from reasonkit.evaluate.shard import pin_devices

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    pin_devices(World(rank=5, size=8, local_rank=1, local_size=2), per_rank=2)  # tensor-parallel 2 per replica
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "2,3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "6")  # Slurm's --gpus-per-task=1 already pinned this task
    pin_devices(World(rank=3, size=8, local_rank=3, local_size=8), per_rank=1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "6"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    with pytest.raises(ReasonkitError, match="rank 1 .* needs 2 GPU"):
        pin_devices(World(rank=1, size=2, local_rank=1, local_size=2), per_rank=2)
