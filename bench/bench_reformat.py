"""Per-frame RGB conversion cost: a fresh swscale context per frame (PyAV's frame.reformat) vs one reformatter
per clip (what reasonkit.media.decode does). Needs synthphys clips: reasonkit synth benchmark --out /tmp/bench-data
then: python bench/bench_reformat.py /tmp/bench-data"""
import glob
import sys
import time

import av
from av.video.reformatter import VideoReformatter

clips = sorted(glob.glob(f"{sys.argv[1]}/sft/synthphys/clips/*.mp4"))[:100]
def per_frame(shared):
    n, t = 0, 0.0
    for c in clips:
        with av.open(c) as ct:
            r = VideoReformatter()
            for f in ct.decode(video=0):
                s = time.perf_counter()
                (r.reformat(f, width=112, height=112, format="rgb24", interpolation="BICUBIC") if shared else
                 f.reformat(width=112, height=112, format="rgb24", interpolation="BICUBIC")).to_ndarray()
                t += time.perf_counter() - s
                n += 1
    return t / n * 1000
for shared in (False, True, False, True):
    print("shared reformatter" if shared else "frame.reformat   ", round(per_frame(shared), 3), "ms/frame")
