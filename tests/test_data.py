"""`reasonkit data download|prepare|verify` on small worlds built here: a local mirror of the hub repo layout
(with malicious tarballs), raw AgiBot/HoloAssist videos and a BridgeV2 TFDS shard whose frames carry their
own frame number as big black/white blocks, so every produced clip can be checked frame by frame."""

from __future__ import annotations

import io
import json
import struct
import tarfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from reasonkit.cli import main

av = pytest.importorskip("av")

TOKEN = "hf_SECRETtoken1234567890"
BLOCK, BITS = 16, 12  # 96x64 frames: 6x4 blocks, 12 bits of frame number


# ---------------------------------------------------------------- frames that carry their own number
def code_frame(n: int, w: int = 96, h: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    for bit in range(BITS):
        r, c = divmod(bit, w // BLOCK)
        if n >> bit & 1:
            img[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = 255
    return img


def read_code(img: np.ndarray) -> int:
    n = 0
    for bit in range(BITS):
        r, c = divmod(bit, img.shape[1] // BLOCK)
        if img[r * BLOCK + 4:r * BLOCK + 12, c * BLOCK + 4:c * BLOCK + 12].mean() > 128:
            n |= 1 << bit
    return n


def clip_info(path: Path) -> tuple[list[int], Fraction, float]:
    """(frame numbers, frame rate, container duration in seconds) of an mp4."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codes = [read_code(f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        duration = float(stream.duration * stream.time_base)
        return codes, Fraction(stream.average_rate), duration


def write_video(path: Path, codes, fps) -> Path:
    from reasonkit.data.encode import ClipWriter

    writer = ClipWriter(path, fps)
    for n in codes:
        writer.add(code_frame(n))
    writer.close()
    return path


def assert_clip(path: Path, first: int, stop: int, fps) -> None:
    codes, rate, duration = clip_info(path)
    assert codes == list(range(first, stop)), path.name
    assert rate == Fraction(fps)
    assert duration == pytest.approx((stop - first) / fps, abs=1e-3)


# ---------------------------------------------------------------- upstream-format annotation
def qa_entries(clip_ids: list[str]) -> list[dict]:
    return [{"video": f"clips/{cid}.mp4", "qa_pairs": {"question": "What next?",
             "index2ans": {"A": "left", "B": "right"}, "answer": "A"}} for cid in clip_ids]


def write_annotation(data_dir: Path, ds: str, clip_ids: list[str]) -> Path:
    path = data_dir / "benchmark" / ds / f"{ds}_benchmark_qa_pairs.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(qa_entries(clip_ids)))
    return path


# ---------------------------------------------------------------- tarballs
def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)  # addfile keeps the name as given (add() would strip a leading '/')
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_link(tar: tarfile.TarFile, name: str, target: str, kind=tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    tar.addfile(info)


def make_tar(path: Path, build) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        build(tar)
    return path


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("clips")
    return {name: write_video(d / f"{name}.mp4", range(8), 8).read_bytes() for name in ("v1", "v2", "v3")}


@pytest.fixture
def mirror(tmp_path, clip_bytes) -> Path:
    """A local mirror of nvidia/Cosmos-Reason1-Benchmark: robovqa (2 clips, 3 questions) and av."""
    repo = tmp_path / "mirror" / "nvidia" / "Cosmos-Reason1-Benchmark"
    robovqa = qa_entries(["v1", "v2"])
    robovqa.append(dict(robovqa[0], qa_pairs=[robovqa[0]["qa_pairs"]]))  # a second question on v1
    (repo / "robovqa").mkdir(parents=True)
    (repo / "robovqa" / "robovqa_benchmark_qa_pairs.json").write_text(json.dumps(robovqa))
    make_tar(repo / "robovqa" / "clips.tar.gz", lambda t: [add_file(t, f"clips/{n}.mp4", clip_bytes[n])
                                                          for n in ("v1", "v2")])
    (repo / "av").mkdir()
    (repo / "av" / "av_benchmark_qa_pairs.json").write_text(json.dumps(qa_entries(["v3"])))
    make_tar(repo / "av" / "clips.tar.gz", lambda t: add_file(t, "clips/v3.mp4", clip_bytes["v3"]))
    (tmp_path / "blob").write_text("mirror\n")  # HF-cache-style mirror: a file linked to a blob elsewhere
    (repo / "README.md").symlink_to(tmp_path / "blob")
    return tmp_path / "mirror"


def run(args: list[str], capsys) -> tuple[int, str]:
    """Exit code and everything printed (stdout + stderr)."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out + out.err


def run_json(args: list[str], capsys) -> tuple[int, dict]:
    """Exit code and the JSON document printed on stdout (progress and errors go to stderr)."""
    code = main([str(a) for a in args])
    return code, json.loads(capsys.readouterr().out)


# ---------------------------------------------------------------- download
def test_mirror_download_extracts_writes_manifest_and_verifies(tmp_path, mirror, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    target = tmp_path / "data"
    code, log = run(["data", "download", "--task", "benchmark", "--target", target, "--mirror", mirror,
                     "--subset", "robovqa"], capsys)
    assert code == 0, log
    bench = target / "benchmark"
    # The downloaded layout is exactly the one benchmarks read: <data>/benchmark/<ds>/clips/<id>.mp4
    assert (bench / "robovqa" / "robovqa_benchmark_qa_pairs.json").is_file()
    assert clip_info(bench / "robovqa" / "clips" / "v1.mp4")[0] == list(range(8))
    assert not (bench / "av").exists()  # --subset filters like the hub's allow_patterns
    manifest = json.loads((bench / "reasonkit_manifest.json").read_text())
    assert manifest["repo_id"] == "nvidia/Cosmos-Reason1-Benchmark"
    files = {f["file"]: f for f in manifest["files"]}
    assert set(files) == {"robovqa/clips.tar.gz", "robovqa/robovqa_benchmark_qa_pairs.json"}
    import hashlib

    tar_entry = files["robovqa/clips.tar.gz"]
    assert tar_entry["sha256"] == hashlib.sha256((bench / "robovqa/clips.tar.gz").read_bytes()).hexdigest()
    assert tar_entry["size"] == (bench / "robovqa/clips.tar.gz").stat().st_size and tar_entry["revision"]
    assert manifest["archives"]["robovqa/clips.tar.gz"]["members"] == ["clips/v1.mp4", "clips/v2.mp4"]
    assert TOKEN not in log and TOKEN not in (bench / "reasonkit_manifest.json").read_text()

    code, log = run(["data", "verify", target], capsys)
    assert code == 0, log
    assert "robovqa" in log and "(3/3)" in log  # coverage counted in questions (v1 has two)

    # A finished download is itself a mirror (rsync it to an air-gapped cluster): its manifest names the repo
    # files and their revision, and the extracted clips are rebuilt from the archives, not copied.
    code, log = run(["data", "download", "--task", "benchmark", "--target", tmp_path / "cluster", "--mirror",
                     bench], capsys)
    assert code == 0, log
    copied = json.loads((tmp_path / "cluster/benchmark/reasonkit_manifest.json").read_text())
    assert [f["file"] for f in copied["files"]] == sorted(files) and copied["revision"] == manifest["revision"]
    assert "extracting robovqa/clips.tar.gz" in log
    assert clip_info(tmp_path / "cluster/benchmark/robovqa/clips/v2.mp4")[0] == list(range(8))


def test_resume_skips_finished_work_and_redoes_interrupted_extraction(tmp_path, mirror, capsys):
    target = tmp_path / "data"
    args = ["data", "download", "--task", "benchmark", "--target", target, "--mirror", mirror]
    assert run(args, capsys)[0] == 0
    bench = target / "benchmark"
    assert (bench / "README.md").read_text() == "mirror\n" and not (bench / "README.md").is_symlink()
    v3 = bench / "av" / "clips" / "v3.mp4"
    v3_mtime = v3.stat().st_mtime_ns
    # Interrupt robovqa's extraction midway: a truncated clip, a leftover .part, no manifest record.
    manifest = json.loads((bench / "reasonkit_manifest.json").read_text())
    del manifest["archives"]["robovqa/clips.tar.gz"]
    (bench / "reasonkit_manifest.json").write_text(json.dumps(manifest))
    v1 = bench / "robovqa" / "clips" / "v1.mp4"
    v1.write_bytes(v1.read_bytes()[:100])
    (bench / "robovqa" / "clips" / "v2.mp4").unlink()
    (bench / "robovqa" / "clips" / "v2.mp4.part").write_bytes(b"partial")
    code, log = run(args, capsys)
    assert code == 0, log
    assert "already extracted: av/clips.tar.gz" in log and "extracting robovqa/clips.tar.gz" in log
    assert v3.stat().st_mtime_ns == v3_mtime
    assert clip_info(v1)[0] == list(range(8)) and clip_info(v1.with_name("v2.mp4"))[0] == list(range(8))
    # A member deleted after a finished extraction is noticed too, and a truncated copy is fetched again.
    v3.unlink()
    (bench / "av" / "clips.tar.gz").write_bytes(b"x")
    code, log = run(args, capsys)
    assert code == 0, log
    assert "extracting av/clips.tar.gz" in log and clip_info(v3)[0] == list(range(8))


@pytest.mark.parametrize("build, member", [
    (lambda t: add_file(t, "../escape.txt", b"x"), "../escape.txt"),
    (lambda t: add_file(t, "clips/../../escape.txt", b"x"), "clips/../../escape.txt"),
    (lambda t: add_file(t, "/tmp/reasonkit-abs-escape.txt", b"x"), "/tmp/reasonkit-abs-escape.txt"),
    (lambda t: add_link(t, "clips/up", "../../.."), "clips/up"),
    (lambda t: add_link(t, "clips/passwd", "/etc/passwd"), "clips/passwd"),
    (lambda t: add_link(t, "clips/hard", "../outside.txt", tarfile.LNKTYPE), "clips/hard"),
    (lambda t: (add_link(t, "clips/inside", "sub"), add_file(t, "clips/inside/x.txt", b"x")),
     "clips/inside/x.txt"),
    (lambda t: add_link(t, "clips/dev", "", tarfile.CHRTYPE), "clips/dev"),
])
def test_malicious_archive_is_refused_whole(tmp_path, build, member):
    from reasonkit.data.extract import UnsafeArchiveError, extract_archive

    archive = make_tar(tmp_path / "repo" / "ds" / "clips.tar.gz",
                       lambda t: (add_file(t, "clips/good.mp4", b"good"), build(t)))
    with pytest.raises(UnsafeArchiveError) as err:
        extract_archive(archive)
    assert str(archive) in str(err.value) and repr(member) in str(err.value)
    assert not (tmp_path / "repo" / "ds" / "clips").exists()  # nothing at all was written
    assert not (tmp_path / "escape.txt").exists() and not Path("/tmp/reasonkit-abs-escape.txt").exists()


def test_archive_is_refused_when_a_folder_on_disk_links_outside(tmp_path):
    from reasonkit.data.extract import UnsafeArchiveError, extract_archive

    (tmp_path / "outside").mkdir()
    archive = make_tar(tmp_path / "repo" / "clips.tar.gz", lambda t: (add_file(t, "a.mp4", b"a"),
                                                                      add_file(t, "clips/x.mp4", b"x")))
    (tmp_path / "repo" / "clips").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafeArchiveError, match="'clips/x.mp4' would be written through a link"):
        extract_archive(archive)
    assert not list((tmp_path / "outside").iterdir()) and not (tmp_path / "repo" / "a.mp4").exists()


def test_download_refuses_unsafe_archive_but_extracts_the_others(tmp_path, mirror, capsys):
    repo = mirror / "nvidia" / "Cosmos-Reason1-Benchmark"
    make_tar(repo / "av" / "evil.tar.gz", lambda t: add_file(t, "../../../pwned.txt", b"x"))
    code, log = run(["data", "download", "--task", "benchmark", "--target", tmp_path / "data", "--mirror",
                     mirror], capsys)
    assert code == 2
    assert "error:" in log and "av/evil.tar.gz" in log and "'../../../pwned.txt'" in log
    assert (tmp_path / "data/benchmark/robovqa/clips/v1.mp4").is_file()
    assert not list(tmp_path.rglob("pwned.txt"))


def test_hub_download_passes_patterns_pinned_revision_endpoint_and_hides_the_token(tmp_path, capsys,
                                                                                  monkeypatch):
    # Mock: no hub is reachable here, so the two huggingface_hub calls are replaced by fakes that record their
    # arguments and write what snapshot_download would.
    import huggingface_hub

    calls = {}

    class FakeApi:
        def __init__(self, endpoint=None, token=None):
            calls["api"] = {"endpoint": endpoint, "token": token}

        def dataset_info(self, repo_id, revision=None):
            calls["info"] = (repo_id, revision)
            files = ["README.md", "robovqa/robovqa_benchmark_qa_pairs.json", "av/av_benchmark_qa_pairs.json"]
            return type("Info", (), {"sha": "c0ffee" * 6 + "abcd",
                                     "siblings": [type("S", (), {"rfilename": f}) for f in files]})

    def fake_snapshot(repo_id, **kw):
        calls["snapshot"] = dict(kw, repo_id=repo_id)
        path = Path(kw["local_dir"]) / "robovqa" / "robovqa_benchmark_qa_pairs.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("[]")
        return str(kw["local_dir"])

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", "https://user:pw@hub.internal:8443")
    code, log = run(["data", "download", "--task", "sft", "--target", tmp_path, "--subset", "robovqa",
                     "--revision", "v1.0"], capsys)
    assert code == 0, log
    snap = calls["snapshot"]
    assert snap["repo_id"] == "nvidia/Cosmos-Reason1-SFT-Dataset" and snap["repo_type"] == "dataset"
    assert snap["allow_patterns"] == ["robovqa/*"] and snap["revision"] == "c0ffee" * 6 + "abcd"
    assert snap["token"] == TOKEN and snap["endpoint"] == "https://user:pw@hub.internal:8443"
    assert calls["info"] == ("nvidia/Cosmos-Reason1-SFT-Dataset", "v1.0")
    manifest = (tmp_path / "sft" / "reasonkit_manifest.json").read_text()
    assert TOKEN not in manifest and TOKEN not in log and "pw@" not in manifest
    assert json.loads(manifest)["source"] == {"endpoint": "https://hub.internal:8443"}

    def failing_snapshot(repo_id, **kw):
        raise RuntimeError(f"401 Unauthorized for token {TOKEN}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing_snapshot)
    code, log = run(["data", "download", "--task", "sft", "--target", tmp_path], capsys)
    assert code == 2 and "RuntimeError: 401 Unauthorized" in log and TOKEN not in log


def test_download_rejects_unknown_subset(tmp_path, capsys):
    code, log = run(["data", "download", "--task", "benchmark", "--target", tmp_path, "--subset", "nope"],
                    capsys)
    assert code == 2 and "bridgev2" in log


# ---------------------------------------------------------------- prepare
def test_prepare_agibot_cuts_frame_ranges_at_the_source_fps(tmp_path, capsys):
    raw = tmp_path / "raw" / "agibot"
    write_video(raw / "observations/327/648642/videos/head_color.mp4", range(120), 15)
    ids = ["327-648642-head_color-10-40-0", "327-648642-head_color-90-120-1",
           "327-999999-head_color-0-10-2", "327-648642-head_color-100-200-3"]
    write_annotation(tmp_path / "data", "agibot", ids)
    code, log = run(["data", "prepare", "agibot", "--raw-dir", tmp_path / "raw", "--data-dir",
                     tmp_path / "data"], capsys)
    assert code == 1, log  # two clips could not be built: listed, not fatal
    clips = tmp_path / "data/benchmark/agibot/clips"
    assert_clip(clips / f"{ids[0]}.mp4", 10, 40, 15)  # frames, not seconds; 15 fps source, not 30
    assert_clip(clips / f"{ids[1]}.mp4", 90, 120, 15)
    assert "2 written" in log and "2 missing" in log
    missing = (tmp_path / "data/benchmark/agibot/missing_clips.txt").read_text()
    assert ids[2] in missing and "raw video not found" in missing
    assert ids[3] in missing and "has 120 frames" in missing
    assert not (clips / f"{ids[3]}.mp4").exists() and not list(clips.glob("*.part"))

    code, report = run_json(["data", "verify", tmp_path / "data", "--json"], capsys)
    assert code == 1 and report["ok"] is False
    agibot = report["datasets"][0]
    assert agibot["counts"] == {"ok": 2, "missing": 2, "broken": 0, "wrong_length": 0}
    assert agibot["coverage"] == 0.5


def test_prepare_any_annotation_file_writes_clips_where_it_points(tmp_path, capsys):
    # SFT/RL annotations name clips the same way; --annotation replaces the benchmark default.
    write_video(tmp_path / "raw/observations/1/2/videos/hand_left_color.mp4", range(20), 10)
    ann = tmp_path / "sft" / "agibot" / "train.json"
    ann.parent.mkdir(parents=True)
    ann.write_text(json.dumps([{"video": "videos/1-2-hand_left_color-5-9-0.mp4", "conversations": []}]))
    code, log = run(["data", "prepare", "agibot", "--raw-dir", tmp_path / "raw", "--annotation", ann], capsys)
    assert code == 0, log
    assert_clip(tmp_path / "sft/agibot/videos/1-2-hand_left_color-5-9-0.mp4", 5, 9, 10)
    code, log = run(["data", "prepare", "agibot", "--raw-dir", tmp_path / "raw"], capsys)
    assert code == 2 and "--data-dir" in log


def test_prepare_holoassist_uses_fine_grained_action_seconds(tmp_path, capsys):
    raw = tmp_path / "raw"  # upstream's <data>/raw/holoassist layout
    write_video(raw / "holoassist/videos/R01-vid/Export_py/Video_pitchshift.mp4", range(100), 25)
    events = [{"id": 5, "label": "Coarse grained action", "start": 0.0, "end": 4.0},
              {"id": 5, "label": "Fine grained action", "start": 1.0, "end": 2.2},
              {"id": 7, "label": "Fine grained action", "start": 0.5, "end": 1.3},
              {"id": 9, "label": "Fine grained action", "start": 3.5, "end": 9.0}]
    (raw / "holoassist" / "data-annotation-trainval-v1_1.json").write_text(
        json.dumps([{"video_name": "R01-vid", "events": events}]))
    ids = ["R01-vid_coarse_5_fine_5", "R01-vid_coarse_5_fine_7", "R01-vid_coarse_5_fine_99",
           "R02-gone_coarse_1_fine_1", "R01-vid_coarse_5_fine_9"]
    write_annotation(tmp_path / "data", "holoassist", ids)
    code, log = run(["data", "prepare", "holoassist", "--raw-dir", raw, "--data-dir", tmp_path / "data"],
                    capsys)
    assert code == 1, log
    clips = tmp_path / "data/benchmark/holoassist/clips"
    assert_clip(clips / f"{ids[0]}.mp4", 25, 55, 25)  # [1.0 s, 2.2 s) at 25 fps
    assert_clip(clips / f"{ids[1]}.mp4", 13, 33, 25)  # [0.5 s, 1.3 s): first frame at 0.52 s
    missing = (tmp_path / "data/benchmark/holoassist/missing_clips.txt").read_text()
    assert "no fine-grained action 99" in missing and "no fine-grained action 1 for video 'R02-gone'" in missing
    assert "lasts 4.000 s" in missing  # event 9 runs past the end of the video


# A minimal tf.train.Example / TFRecord writer: the reader is tested against the wire format, not itself.
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _msg(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def tf_example(features: dict[str, bytes]) -> bytes:
    return _msg(1, b"".join(_msg(1, _msg(1, k.encode()) + _msg(2, v)) for k, v in features.items()))


def bytes_feature(values) -> bytes:
    return _msg(1, b"".join(_msg(1, v) for v in values))


def int64_feature(values) -> bytes:
    return _msg(3, _msg(1, b"".join(_varint(v) for v in values)))


def write_tfrecord(path: Path, records: list[bytes]) -> None:
    from reasonkit.data.tfrecord import masked_crc32c

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for r in records:
            n = struct.pack("<Q", len(r))
            f.write(n + struct.pack("<I", masked_crc32c(n)) + r + struct.pack("<I", masked_crc32c(r)))


def jpeg(n: int) -> bytes:
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 96, 64, "yuvj420p", Fraction(1, 30)
    frame = av.VideoFrame.from_ndarray(code_frame(n), format="rgb24").reformat(format="yuvj420p")
    return bytes((ctx.encode(frame) + ctx.encode(None))[0])


def bridge_episode(folder: str, episode: int, codes) -> bytes:
    return tf_example({
        "episode_metadata/file_path": bytes_feature([f"/nfs/datasets/bridge_data_all/{folder}/out.npy".encode()]),
        "episode_metadata/episode_id": int64_feature([episode]),
        "episode_metadata/has_language": int64_feature([1]),
        "steps/observation/image_0": bytes_feature([jpeg(n) for n in codes]),
    })


def test_prepare_bridgev2_keeps_frames_zero_to_clipframe_at_30_fps(tmp_path, capsys):
    raw = tmp_path / "raw" / "bridgev2" / "bridge_dataset" / "1.0.0"
    write_tfrecord(raw / "bridge_dataset-train.tfrecord-00000-of-00001",
                   [bridge_episode("numpy_256/icra/toykitchen/02/train", 3, range(500, 510))])
    write_tfrecord(raw / "bridge_dataset-val.tfrecord-00000-of-00001",
                   [bridge_episode("numpy_256/icra/toykitchen/02/train", 4, range(100, 130)),
                    bridge_episode("numpy_256/icra/toykitchen/02/train", 3, range(40))])
    ids = ["numpy_256-icra-toykitchen-02-train.3.totalframe040.clipframe017",
           "numpy_256-icra-toykitchen-02-train.4.totalframe030.clipframe029",
           "numpy_256-icra-toykitchen-02-train.9.totalframe040.clipframe005",
           "numpy_256-icra-toykitchen-02-train.4.totalframe060.clipframe045"]
    write_annotation(tmp_path / "data", "bridgev2", ids)
    code, log = run(["data", "prepare", "bridgev2", "--raw-dir", tmp_path / "raw", "--data-dir",
                     tmp_path / "data"], capsys)
    assert code == 1, log
    clips = tmp_path / "data/benchmark/bridgev2/clips"
    assert_clip(clips / f"{ids[0]}.mp4", 0, 18, 30)  # frames 0..17 of the val episode, not the whole episode
    codes, _, _ = clip_info(clips / f"{ids[1]}.mp4")
    assert codes == list(range(100, 130))
    missing = (tmp_path / "data/benchmark/bridgev2/missing_clips.txt").read_text()
    assert f"{ids[2]}\tepisode numpy_256-icra-toykitchen-02-train#9 not found" in missing
    assert ids[3] in missing and "has 30 image_0 frames" in missing

    # Re-running builds nothing twice; verify flags a clip of the wrong length (upstream's whole-episode bug).
    code, log = run(["data", "prepare", "bridgev2", "--raw-dir", tmp_path / "raw", "--data-dir",
                     tmp_path / "data"], capsys)
    assert "0 written, 2 already present, 2 missing" in log
    write_video(clips / f"{ids[0]}.mp4", range(40), 30)
    (clips / f"{ids[2]}.mp4").write_bytes(b"not an mp4")
    code, report = run_json(["data", "verify", tmp_path / "data", "--json"], capsys)
    assert code == 1
    problems = {p["video"]: p for p in report["datasets"][0]["problems"]}
    assert problems[ids[0]]["status"] == "wrong_length" and "implies 18" in problems[ids[0]]["detail"]
    assert problems[ids[2]]["status"] == "broken" and problems[ids[3]]["status"] == "missing"


# ---------------------------------------------------------------- pure parts
def test_clip_ids_and_tfrecord_checksum():
    from reasonkit.data import clip_ids
    from reasonkit.data.tfrecord import masked_crc32c

    bridge = clip_ids.parse_bridge("a-b-val.12.totalframe1500.clipframe1234")
    assert (bridge.folder, bridge.episode, bridge.frames) == ("a-b-val", 12, 1235)  # all digits, not the last 3
    agibot = clip_ids.parse_agibot("390-705065-head_center_fisheye_color-1140-1285-8")
    assert (agibot.camera, agibot.start, agibot.end, agibot.frames) == ("head_center_fisheye_color", 1140, 1285,
                                                                        145)
    holo = clip_ids.parse_holoassist("z188-july-19-22-dslr_coarse_3_fine_17")
    assert (holo.video, holo.coarse, holo.fine) == ("z188-july-19-22-dslr", 3, 17)
    assert clip_ids.expected_frames("holoassist", "x_coarse_1_fine_2") is None
    with pytest.raises(Exception, match="clip id"):
        clip_ids.parse_agibot("not-an-id")
    # masked CRC32C of b"123456789" (CRC32C check value 0xE3069283), masked as TFRecord does.
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_verify_without_annotations_is_a_clear_error(tmp_path, capsys):
    code, log = run(["data", "verify", tmp_path], capsys)
    assert code == 2 and "benchmark/<ds>/<ds>_benchmark_qa_pairs.json" in log
