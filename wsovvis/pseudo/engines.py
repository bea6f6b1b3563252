"""``build_engine(cfg)``: the only place that turns pseudo-tube settings into an engine.

``cfg`` keys (an argparse Namespace or a dict; missing keys take the defaults of `DEFAULTS`):
``engine`` (``maskcut`` | ``videocutler`` | ``owlv2_sam2``), ``arch`` (``classic`` or a ViT of
`wsovvis.pseudo.vit_features.VIT_ARCHS`), ``weights``, ``tau``, ``num_cuts``, ``refine``,
``short_side``, ``conf``, ``clip_len``, ``overlap``, ``cutler_root``, ``device``, ``no_flow_check``.

With ``engine=maskcut`` and no ``weights`` the weight-free classic features are used (no
download, the default). Naming a ViT ``arch`` without ``weights`` is an error naming ``--weights``.
"""

from __future__ import annotations

from argparse import Namespace
from typing import Any

from wsovvis.errors import WsovvisError
from wsovvis.pseudo.cleanup import CleanupParams
from wsovvis.pseudo.cut import CutParams
from wsovvis.pseudo.features import build_features
from wsovvis.pseudo.maskcut import MaskCutEngine
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)

ENGINES = ("maskcut", "videocutler", "owlv2_sam2")
DEFAULTS: dict[str, Any] = {
    "engine": "maskcut", "arch": "auto", "weights": None, "tau": None, "num_cuts": None, "refine": "guided",
    "short_side": None, "conf": 0.8, "clip_len": 64, "overlap": 8, "cutler_root": "third_party/CutLER",
    "device": None, "min_len": 3, "trust_pickle": False, "preset": "default", "no_flow_check": False,
}
# ``default``: the tuned pipeline below; ``maskcut_paper``: the published MaskCut per-frame procedure
# (`wsovvis.pseudo.maskcut_paper`: 480² square input, DINO ViT-B/8 keys, tau 0.15, N 3, CRF).
PRESETS = ("default", "maskcut_paper")
# Weight-free cut settings, tuned on the DAVIS sample and the synthetic videos (bench/pseudo_davis.py);
# every value chosen by looking at real data is listed, with its number, in wsovvis/pseudo/defaults.py.
CLASSIC_CUT = {"tau": 0.4, "num_cuts": 4, "fg_rule": "saliency", "min_saliency": 0.3}
VIT_CUT = {"num_cuts": 3, "fg_rule": "maskcut"}


def resolved_defaults() -> dict[str, Any]:
    """The built-in engine's code defaults that no flag names, flattened to ``"default.<part>.<name>"`` keys.

    Recorded in a pseudo run's ``params.json`` (`wsovvis.pseudo.cli.provenance_params`) so that
    resuming after an upgrade that changed them is refused instead of mixing old and new tubes.
    """
    import inspect
    from dataclasses import asdict

    from wsovvis.pseudo.classic_features import ClassicFeatures
    from wsovvis.pseudo.cliplink import ClipLinkParams

    def init_defaults(cls) -> dict[str, Any]:
        return {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty and isinstance(p.default, int | float | str | bool)}

    parts = {"classic_cut": CLASSIC_CUT, "vit_cut": VIT_CUT, "cut": asdict(CutParams()),
             "classic_features": init_defaults(ClassicFeatures), "engine": init_defaults(MaskCutEngine),
             "clip_link": asdict(ClipLinkParams()), "clean": asdict(CleanupParams())}
    return {f"default.{part}.{k}": v for part, d in parts.items() for k, v in sorted(d.items())}


def _get(cfg: Namespace | dict, key: str) -> Any:
    val = cfg.get(key) if isinstance(cfg, dict) else getattr(cfg, key, None)
    return DEFAULTS[key] if val is None else val


def _build_paper(cfg: Namespace | dict, arch: str, weights):
    """The ``maskcut_paper`` preset: a DINO ViT (ViT-B/8 unless --arch names another) and the paper's settings."""
    from wsovvis.pseudo.maskcut_paper import PAPER, MaskCutPaperEngine

    arch = PAPER["arch"] if arch == "auto" else arch
    if arch == "classic":
        raise WsovvisError("--preset maskcut_paper needs DINO features: pass --weights <dino_vitbase8_pretrain.pth> "
                           "(and --arch dino_vitb8, the default of this preset), not --arch classic")
    features = build_features(arch, weights=weights, device=_get(cfg, "device"),
                              trust_pickle=bool(_get(cfg, "trust_pickle")))
    tau = float(_get(cfg, "tau") if _get(cfg, "tau") is not None else PAPER["tau"])
    n = int(_get(cfg, "num_cuts") if _get(cfg, "num_cuts") is not None else PAPER["num_cuts"])
    size = int(_get(cfg, "short_side") or PAPER["size"])
    log.info("engine maskcut_paper: %s keys on %dx%d squares, tau %.2f, N %d, CRF (guided if pydensecrf is "
             "missing)", arch, size, size, tau, n)
    return MaskCutPaperEngine(features, tau=tau, num_cuts=n, size=size, refine=PAPER["refine"],
                              clean=CleanupParams(min_len=int(_get(cfg, "min_len"))))


def build_engine(cfg: Namespace | dict):
    """-> ``MaskCutEngine`` or ``VideoCutLEREngine`` (both: ``engine(video) -> EngineResult`` and ``frame_spec``)."""
    name = _get(cfg, "engine")
    if name not in ENGINES:
        raise WsovvisError(f"unknown --engine {name!r}; choose from {', '.join(ENGINES)}")
    if name == "owlv2_sam2":  # text-prompted, category-labelled tubes; its settings: build_owlv2_sam2
        from wsovvis.pseudo.owlv2_sam2 import build_owlv2_sam2

        return build_owlv2_sam2(cfg)
    weights = _get(cfg, "weights")
    if name == "videocutler":
        from wsovvis.pseudo.videocutler import CutLERPredictor, VideoCutLEREngine

        predictor = CutLERPredictor(_get(cfg, "cutler_root"), weights, _get(cfg, "device"))
        return VideoCutLEREngine(predictor, threshold=float(_get(cfg, "conf")), clip_len=int(_get(cfg, "clip_len")),
                                 overlap=int(_get(cfg, "overlap")))
    arch = _get(cfg, "arch")
    preset = _get(cfg, "preset")
    if preset not in PRESETS:
        raise WsovvisError(f"unknown --preset {preset!r}; choose from {', '.join(PRESETS)}")
    if preset == "maskcut_paper":
        return _build_paper(cfg, arch, weights)
    if arch == "auto":
        arch = "dino_vitb8" if weights else "classic"
    clean = CleanupParams(min_len=int(_get(cfg, "min_len")))
    if arch == "classic":
        if weights:
            raise WsovvisError("--weights was given with --arch classic, which uses no weights; "
                               "name the ViT with --arch (e.g. dino_vitb8)")
        kw = {"short_side": int(_get(cfg, "short_side") or 480), "fb_check": not bool(_get(cfg, "no_flow_check"))}
        features = build_features("classic", **kw)
        cut = dict(CLASSIC_CUT)
    else:
        kw = {"weights": weights, "device": _get(cfg, "device"), "trust_pickle": bool(_get(cfg, "trust_pickle"))}
        if _get(cfg, "short_side"):
            kw["short_side"] = int(_get(cfg, "short_side"))
        features = build_features(arch, **kw)
        cut = dict(VIT_CUT, tau=features.default_tau)
    if _get(cfg, "tau") is not None:
        cut["tau"] = float(_get(cfg, "tau"))
    if _get(cfg, "num_cuts") is not None:
        cut["num_cuts"] = int(_get(cfg, "num_cuts"))
    log.info("engine maskcut: features %s, tau %.2f, N %d, refine %s", arch, cut["tau"], cut["num_cuts"],
             _get(cfg, "refine"))
    return MaskCutEngine(features, CutParams(**cut), clean=clean, refine=_get(cfg, "refine"))
