"""Procedural scenes for the synthetic physical-reasoning benchmark: big flat-coloured shapes moving at constant
velocity over a dark floor lit in a gradient, one question per scene.

Each task maps ``(rng, value)`` to a :class:`Scene` whose answer is ``values[value]`` (the caller picks ``value``
so answers are balanced). Every object in a scene has its own colour: questions name objects by colour and shape,
and the solver finds them by colour. Motions are sized so that 2 fps sampling shows them clearly (several frames,
tens of pixels) — the tasks must be learnable by a tiny VLM, not only by the solver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SIZE = 112  # frame side in px: a multiple of 28 and the synthphys FrameSpec maximum, so frames reach the model as is
FPS = 8  # encoded frame rate; the benchmark samples 2 fps from it
FRAMES = 16  # 2 s per clip -> 8 sampled frames -> 4 temporal patches of 4x4 merged tokens
OBJ = 28  # object side / diameter in px: one merged vision token (28 px) at least, so objects are not sub-token
# The floor: dark, with red rising left to right and blue top to bottom. Real footage always shows where things
# are; a uniform background does not (the vision tower's rotary positions are relative only), and with it the
# tiny model could not learn motion direction. Every channel stays far from the object palette.
_RAMP = (np.arange(SIZE) + 0.5) / SIZE
BACKGROUND = np.stack(np.broadcast_arrays(16 + 48 * _RAMP[None, :], np.full((SIZE, SIZE), 24.0),
                                          16 + 48 * _RAMP[:, None]), axis=-1).round().astype(np.uint8)
COLORS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (60, 100, 255), "yellow": (240, 220, 40),
          "white": (235, 235, 235)}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
DURATION = (FRAMES - 1) / FPS  # time of the last frame
LO, HI = OBJ / 2 + 3, SIZE - OBJ / 2 - 3  # centre range that keeps an object fully inside the frame


@dataclass(frozen=True)
class Obj:
    color: str
    shape: str
    x: float  # centre at t=0, px
    y: float
    vx: float = 0.0  # px per second
    vy: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    def at(self, t: float) -> tuple[float, float]:
        return self.x + self.vx * t, self.y + self.vy * t

    @property
    def heading(self) -> str:
        """Direction word of the motion (objects move along one axis)."""
        step = (int(np.sign(self.vx)), 0) if abs(self.vx) > abs(self.vy) else (0, int(np.sign(self.vy)))
        return next(word for word, unit in DIRECTIONS.items() if unit == step)


@dataclass(frozen=True)
class Scene:
    task: str
    objects: tuple[Obj, ...]
    question: str
    values: tuple[str, ...]  # every option text, in canonical order (independent of the answer)
    answer: int  # index into values
    # SFT target: what is seen first, then the conclusion. Every moving object's direction is named in every task,
    # so direction is supervised on four tasks of five rather than one (at one of five, the tiny model never
    # learned it in 2,000 steps).
    reasoning: str

    def signature(self) -> str:
        """Identity of the scene's content, to keep train and test splits disjoint."""
        objs = ",".join(f"{o.color}:{o.shape}:{o.x:.0f}:{o.y:.0f}:{o.vx:.0f}:{o.vy:.0f}" for o in self.objects)
        return f"{self.task}|{objs}"


def render(objects: tuple[Obj, ...], t: float) -> np.ndarray:
    """One (SIZE, SIZE, 3) uint8 frame at time ``t``."""
    frame = BACKGROUND.copy()
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    r = OBJ / 2
    for obj in objects:
        cx, cy = obj.at(t)
        dx, dy = xx - cx, yy - cy
        if obj.shape == "circle":
            mask = dx * dx + dy * dy <= r * r
        elif obj.shape == "square":
            mask = (np.abs(dx) <= r * 0.9) & (np.abs(dy) <= r * 0.9)
        else:  # upward triangle: width grows linearly from the apex
            mask = (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
        frame[mask] = COLORS[obj.color]
    return frame


def render_clip(scene: Scene) -> np.ndarray:
    return np.stack([render(scene.objects, k / FPS) for k in range(FRAMES)])


def _looks(rng: np.random.Generator, k: int) -> list[tuple[str, str]]:
    colors = rng.choice(list(COLORS), size=k, replace=False)
    return [(str(c), str(rng.choice(SHAPES))) for c in colors]


def _clear(p: tuple[float, float], others: list[tuple[float, float]], gap: float = OBJ + 6) -> bool:
    return all(max(abs(p[0] - q[0]), abs(p[1] - q[1])) >= gap for q in others)


def _free_spot(rng: np.random.Generator, taken: list[tuple[float, float]]) -> tuple[float, float]:
    for _ in range(10_000):  # scenes hold at most 4 objects: a free spot is always found quickly
        p = (float(rng.uniform(LO, HI)), float(rng.uniform(LO, HI)))
        if _clear(p, taken):
            return p
    raise RuntimeError("no free spot for an object")


def _path(o: Obj, steps: int = 9) -> list[tuple[float, float]]:
    return [o.at(DURATION * i / (steps - 1)) for i in range(steps)]


def _mover(rng, look, direction: str, speed: tuple[float, float]) -> Obj:
    """An object crossing a good part of the frame along ``direction`` without leaving it."""
    ux, uy = DIRECTIONS[direction]
    v = float(rng.uniform(*speed))
    travel = v * DURATION
    start = float(rng.uniform(LO, HI - travel))  # along the motion axis, measured from the side it leaves
    along = start if (ux + uy) > 0 else SIZE - start
    across = float(rng.uniform(LO, HI))
    x, y = (along, across) if ux else (across, along)
    return Obj(*look, x, y, ux * v, uy * v)


def direction(rng: np.random.Generator, value: int) -> Scene:
    values = tuple(DIRECTIONS)
    looks = _looks(rng, 1 + int(rng.integers(0, 2)))
    target = _mover(rng, looks[0], values[value], (26.0, 36.0))
    objs = [target]
    for look in looks[1:]:  # a still distractor: the question is about the named object's motion
        objs.append(Obj(*look, *_free_spot(rng, _path(target))))
    return Scene("direction", tuple(objs), f"In which direction does the {target.name} move?", values, value,
                 f"The {target.name} moves {values[value]}.")


def count(rng: np.random.Generator, value: int) -> Scene:
    values = ("1", "2", "3", "4")
    taken: list[tuple[float, float]] = []
    objs = []
    for look in _looks(rng, value + 1):
        taken.append(_free_spot(rng, taken))
        objs.append(Obj(*look, *taken[-1]))
    return Scene("count", tuple(objs), "How many objects are in the video?", values, value,
                 f"There {'is' if value == 0 else 'are'} {values[value]} object{'' if value == 0 else 's'}.")


def _two_lanes(rng, gap: float, lo: float = LO, hi: float = HI) -> tuple[float, float]:
    a = float(rng.uniform(lo, hi - gap))
    return a, float(rng.uniform(a + gap, hi))


def faster(rng: np.random.Generator, value: int) -> Scene:
    """Two objects in separate lanes along one axis; one moves 3-6x faster than the other."""
    axis = str(rng.choice(["left", "up"]))  # horizontal or vertical motion
    lanes = _two_lanes(rng, OBJ + 10)
    objs = []
    for i, (look, lane) in enumerate(zip(_looks(rng, 2), rng.permutation(lanes))):
        direction = str(rng.choice(["left", "right"] if axis == "left" else ["up", "down"]))
        mover = _mover(rng, look, direction, (26.0, 36.0) if i == value else (4.0, 8.0))
        objs.append(Obj(mover.color, mover.shape, mover.x if axis == "left" else float(lane),
                        float(lane) if axis == "left" else mover.y, mover.vx, mover.vy))
    fast, slow = objs[value], objs[1 - value]
    return Scene("faster", tuple(objs), f"Which object moves faster, the {objs[0].name} or the {objs[1].name}?",
                 (f"the {objs[0].name}", f"the {objs[1].name}"), value,
                 f"The {fast.name} moves {fast.heading} fast and the {slow.name} moves {slow.heading} slowly, "
                 f"so the {fast.name} is faster.")


def collide(rng: np.random.Generator, value: int) -> Scene:
    """Two objects move along one axis at 7-12 px/s: head-on in one lane (yes), or in the same direction at the
    same speed, side by side or one behind the other (no). The clip ends before anything meets: the question asks
    for a prediction, and the answer follows from the two directions of motion."""
    values = ("yes", "no")
    horizontal = bool(rng.integers(0, 2))
    speed = float(rng.uniform(7.0, 12.0))
    if value == 0:  # starts at opposite ends keep them >= OBJ + 10 px apart at the last frame
        lanes = (float(rng.uniform(LO, HI)),) * 2
        along = (float(rng.uniform(LO, LO + 3)), float(rng.uniform(HI - 3, HI)))
        velocity = (speed, -float(rng.uniform(7.0, 12.0)))
    else:
        sign = float(rng.choice([-1.0, 1.0]))
        travel = speed * DURATION
        lo, hi = (LO, HI - travel) if sign > 0 else (LO + travel, HI)
        if rng.integers(0, 2):  # one behind the other in one lane
            lanes, along = (float(rng.uniform(LO, HI)),) * 2, _two_lanes(rng, OBJ + 10, lo, hi)
        else:  # side by side
            lanes, along = _two_lanes(rng, OBJ + 10), (float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi)))
        velocity = (sign * speed, sign * speed)
    a_look, b_look = _looks(rng, 2)
    if horizontal:
        a, b = (Obj(*look, p, lane, v, 0.0) for look, p, lane, v in zip((a_look, b_look), along, lanes, velocity))
    else:
        a, b = (Obj(*look, lane, p, 0.0, v) for look, p, lane, v in zip((a_look, b_look), along, lanes, velocity))
    first, second = (a, b) if rng.integers(0, 2) else (b, a)
    reason = (f"The {first.name} moves {first.heading} and the {second.name} moves {second.heading}, toward each "
              f"other on the same line, so they will collide." if value == 0 else
              f"The {first.name} and the {second.name} both move {first.heading} at the same speed, so they will "
              f"not meet.")
    return Scene("collide", (first, second),
                 f"If they keep moving the same way, will the {first.name} and the {second.name} collide?",
                 values, value, reason)


def moving(rng: np.random.Generator, value: int) -> Scene:
    """Three objects, exactly one of which moves."""
    looks = _looks(rng, 3)
    target = _mover(rng, looks[value], str(rng.choice(list(DIRECTIONS))), (26.0, 36.0))
    taken = _path(target)
    objs: list[Obj] = []
    for i, look in enumerate(looks):
        if i == value:
            objs.append(target)
        else:
            spot = _free_spot(rng, taken)
            taken.append(spot)
            objs.append(Obj(*look, *spot))
    return Scene("moving", tuple(objs), "Which object is moving?", tuple(f"the {o.name}" for o in objs), value,
                 f"The {target.name} moves {target.heading} and the other objects stay still.")


TASKS: dict[str, Callable[[np.random.Generator, int], Scene]] = {
    "direction": direction, "count": count, "faster": faster, "collide": collide, "moving": moving,
}
N_VALUES = {"direction": 4, "count": 4, "faster": 2, "collide": 2, "moving": 3}
