"""The model line: reasoning only where a model takes it, and a replacement for a refused model."""

from __future__ import annotations

from ava_tray.realtime.models import DEFAULT_MODEL, MODELS, known_model, replacement_for, takes_reasoning


def test_the_current_line_is_offered_with_2_1_first() -> None:
    assert DEFAULT_MODEL == "gpt-realtime-2.1" == MODELS[0].name
    assert [m.name for m in MODELS][:4] == ["gpt-realtime-2.1", "gpt-realtime-2.1-mini", "gpt-realtime-2",
                                            "gpt-realtime-1.5"]
    assert known_model("gpt-realtime").shuts_down == "2027-01-20"  # type: ignore[union-attr]


def test_reasoning_only_for_models_that_take_it() -> None:
    assert takes_reasoning("gpt-realtime-2.1") and takes_reasoning("gpt-realtime-2-2026-05-07")
    assert not takes_reasoning("gpt-realtime-1.5") and not takes_reasoning("gpt-realtime")
    assert not takes_reasoning("my-azure-deployment")


def test_a_refused_model_has_a_replacement_of_its_size() -> None:
    assert replacement_for("gpt-realtime") == "gpt-realtime-2.1"
    assert replacement_for("gpt-realtime-mini") == "gpt-realtime-2.1-mini"
    assert replacement_for("gpt-realtime-2.1") == "gpt-realtime-2"
    assert replacement_for("gpt-realtime-2.1-mini") == "gpt-realtime-mini"
    assert replacement_for("gpt-realtime-2.1-2026-07-15") == "gpt-realtime-2"
