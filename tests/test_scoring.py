"""Answer extractors (upstream bug-for-bug and strict), scorers, rewards, and the score report."""

from __future__ import annotations

import pytest

from reasonkit.scoring.extract import extract_strict, extract_upstream
from reasonkit.types import Sample

CHOICES = {"A": "the red cube", "B": "the blue ball", "C": "nothing"}


@pytest.mark.parametrize("output, answer_type, expected", [
    ("<think>x</think>\n\n<answer>B</answer>", "reasoning", "B"),
    ("<think>x</think> B", "reasoning", None),                              # no tag
    ("<answer>C</answer> then <answer>A</answer>", "reasoning", "C"),       # first tag wins
    ("<answer>The answer is B</answer>", "reasoning", "T"),                 # upstream pitfall, reproduced
    ("<answer>b</answer>", "reasoning", None),                              # lowercase: no uppercase letter
    ("<answer>\n  (A) red\n</answer>", "reasoning", "A"),                   # dot matches newline
    ("<answer>Ｂ</answer>", "reasoning", None),                             # full-width letter is not [A-Z]
    ("<think>long reasoning that got cut off <answer>B", "reasoning", None),  # truncated
    ("(B) the blue ball", "letter", "B"),
    ("b", "letter", None),
    ("I think C", "letter", "I"),                                           # first uppercase letter anywhere
])
def test_upstream_extractor(output, answer_type, expected):
    assert extract_upstream(output, answer_type) == expected


@pytest.mark.parametrize("output, answer_type, expected", [
    ("<answer>B</answer>", "reasoning", "B"),
    ("<answer>(B)</answer>", "reasoning", "B"),
    ("<answer> b. </answer>", "reasoning", "B"),                            # lowercase accepted
    ("<answer>B. the blue ball</answer>", "reasoning", "B"),
    ("<answer>B: the red cube</answer>", "reasoning", None),                # letter and text disagree
    ("<answer>The answer is B</answer>", "reasoning", "B"),                 # upstream says "T"
    ("<answer>Option C</answer>", "reasoning", "C"),
    ("<answer>the blue ball</answer>", "reasoning", "B"),                   # the option text itself
    ("<answer>Ｂ</answer>", "reasoning", "B"),                              # full-width normalised
    ("<answer>A or B</answer>", "reasoning", None),                         # ambiguous
    ("<answer>C</answer><answer>A</answer>", "reasoning", "C"),
    ("<think>B</think>", "reasoning", None),                                # no answer tag
    ("<answer>B", "reasoning", None),                                       # truncated
    ("<answer>D</answer>", "reasoning", None),                              # not an option
    ("B", "letter", "B"),
    ("(c)", "letter", "C"),
    ("I think C", "letter", "C"),                                           # "I" is not an option here
])
def test_strict_extractor(output, answer_type, expected):
    assert extract_strict(output, answer_type, CHOICES) == expected


def _sample(answer="B"):
    return Sample(id="v#0", dataset="d", video=None, question="q", choices=CHOICES, answer=answer)


def test_scorers_through_plugins(fresh_plugins):
    upstream, strict = fresh_plugins.get_scorer("upstream"), fresh_plugins.get_scorer("strict")
    out = "<think>...</think>\n\n<answer>The answer is B</answer>"
    assert upstream.score(out, _sample(), "reasoning").correct is False
    judged = strict.score(out, _sample(), "reasoning")
    assert judged.correct and judged.extracted == "B"
    assert upstream.score("<answer>b</answer>", _sample("b"), "reasoning").correct is False


@pytest.mark.parametrize("completion, expected", [
    ("<think>moving left</think>\n\n<answer>B</answer>", 1.0),
    ("<think>a</think>\n<answer>B</answer>", 0.0),                  # one newline
    ("<think>a</think>\n\n<answer>B</answer> extra", 0.0),
    ("<answer>B</answer>", 0.0),
    ("<think>a<think>b</think>\n\n<answer>B</answer>", 0.0),        # nested tag
])
def test_format_reward(fresh_plugins, completion, expected):
    assert fresh_plugins.get_reward("format")(completion, "B") == expected


def test_single_choice_and_scorer_rewards(fresh_plugins):
    single = fresh_plugins.get_reward("single_choice")
    assert single("<answer> b </answer>", "B") == 1.0
    assert single("<answer>B.</answer>", "B") == 0.0
    derived = fresh_plugins.get_reward("scorer:strict")
    value, info = derived("<answer>the blue ball</answer>", "B", sample=_sample())
    assert value == 1.0 and info == {"extracted": "B"}
    with pytest.raises(Exception, match="did you mean 'scorer:strict'"):
        fresh_plugins.get_reward("scorer:strikt")
