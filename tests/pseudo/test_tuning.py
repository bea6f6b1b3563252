"""`wsovvis.pseudo.tuning.run_grid`: every configuration on every sequence, the flow shared."""

from __future__ import annotations

import numpy as np

from wsovvis.pseudo.tuning import GRID, QUICK_GRID, config_name, default_config, grid_configs, run_grid


def test_the_defaults_are_on_both_grids():
    name = config_name(default_config())
    for grid in (GRID, QUICK_GRID):
        assert name in [config_name(c) for c in grid_configs(grid)]
    assert set(default_config()) == set(GRID) == set(QUICK_GRID)


def test_run_grid_covers_every_configuration_and_workers_change_nothing(synthetic_data, monkeypatch):
    from wsovvis.pseudo import classic_features

    calls = []
    real = classic_features.ClassicFeatures.motion

    def counting(self, frames):
        calls.append(len(frames))
        return real(self, frames)

    monkeypatch.setattr(classic_features.ClassicFeatures, "motion", counting)
    seqs = synthetic_data.video_names[:2]
    grid = {"coherence": (0.0, 0.2), "tau": (0.5,), "link_iou": (0.3, 0.5)}
    one = run_grid(synthetic_data.img_root, synthetic_data.mask_root, seqs, grid, progress=False)
    assert calls == [synthetic_data.num_frames] * len(seqs)  # the flow once per sequence, not per configuration
    assert sorted(one) == sorted(config_name(c) for c in grid_configs(grid))
    for per_seq in one.values():
        assert sorted(per_seq) == sorted(seqs)
        for o in per_seq.values():
            assert 0.0 <= o["J"] <= 1.0 and o["id_switches"] >= 0
            assert len(o["results"]) == len(o["scores"]) == len(o["tube_iou"])
            for r in o["results"]:
                assert len(r["segmentations"]) == synthetic_data.num_frames
    # J and tube IoU are taken against GT id 1 (the DAVIS foreground): some tube finds that object.
    assert any(max(o["tube_iou"], default=0.0) > 0.5 for per_seq in one.values() for o in per_seq.values())
    two = run_grid(synthetic_data.img_root, synthetic_data.mask_root, seqs, grid, progress=False, workers=2)
    assert two.keys() == one.keys()
    for name in one:
        for s in seqs:
            assert np.isclose(two[name][s]["J"], one[name][s]["J"])
            assert two[name][s]["results"] == one[name][s]["results"]
