"""The Gradio page: Test, Batch, Review and Metrics tabs wired to the plain functions of this package.

Every handler goes through `_guarded`: bad input (`WsovvisError`) becomes a readable message in
the tab's status line, any other exception is logged with its traceback on the server and shown
as a one-line internal error; the server keeps running either way. Components carry ``elem_id``s
(``<tab>-<part>``) that the browser test drives.
"""

from __future__ import annotations

import functools
import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Gradio reads these when imported; `wsovvis.app.session.prepare_environment` (run by the command
# before this module is imported) also points its upload cache at the session folder.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402 - after the environment above

from wsovvis.app import labeling, review, review_render, run_metrics
from wsovvis.app.session import SessionDirs
from wsovvis.errors import WsovvisError
from wsovvis.utils.logging import get_logger

log = get_logger(__name__)


@dataclass
class AppOptions:
    """What the command line gives the page.

    labeler: the detector/segmenter pair (`labeling.Labeler`); its ``missing`` message is shown
    in Test/Batch when no model was given.
    review_json, frame_root, videos_json, run_dir: pre-filled paths (loaded when the page opens).
    max_preview_frames: frames of a video shown in Test previews and Review GIFs.
    """

    labeler: labeling.Labeler
    dirs: SessionDirs
    review_json: str = ""
    frame_root: str = ""
    videos_json: str = ""
    run_dir: str = ""
    max_preview_frames: int = 16


def ok(text: str) -> str:
    return f"<div class='wsovvis-ok'>{html.escape(text)}</div>" if text else ""


def error(text: str) -> str:
    return f"<div class='wsovvis-error'><b>error:</b> {html.escape(text)}</div>"


def _guarded(n_outputs: int):
    """Turn exceptions of a handler whose first output is the status HTML into a message there."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except WsovvisError as e:
                log.info("shown to the user: %s", e)
                msg = error(str(e))
            except Exception as e:  # noqa: BLE001 - a bug must not take the page down
                log.exception("internal error in %s", fn.__name__)
                msg = error(f"internal error ({type(e).__name__}: {e}); the server log has the traceback")
            return (msg, *[gr.skip()] * (n_outputs - 1)) if n_outputs > 1 else msg

        return inner

    return wrap


CSS = """
.wsovvis-error { color: #b00020; background: #fdecea; padding: 6px 10px; border-radius: 4px; white-space: pre-wrap; }
.wsovvis-ok { color: #1b5e20; background: #edf7ed; padding: 6px 10px; border-radius: 4px; white-space: pre-wrap; }
"""


def build_app(opts: AppOptions):
    """The `gradio.Blocks` of the app (not launched)."""

    def sdir(request: gr.Request | None) -> Path:
        return opts.dirs.for_session(getattr(request, "session_hash", None))

    with gr.Blocks(title="wsovvis", analytics_enabled=False) as demo:
        gr.Markdown("## wsovvis: try prompts, label in batch, review tubes, read runs")

        # ------------------------------------------------------------------ Test
        with gr.Tab("Test", id="test", elem_id="tab-test"):
            gr.HTML(ok(opts.labeler.describe()) if opts.labeler.ready else error(opts.labeler.missing),
                    elem_id="test-models")
            with gr.Row():
                with gr.Column(scale=1):
                    prompts_text = gr.Textbox(label="prompts (one per line or comma-separated; 'prompt = class' "
                                              "maps a prompt to a class)", lines=3, elem_id="test-prompts",
                                              placeholder="red ball = ball, blue ball = ball, person")
                    prompts_file = gr.File(label="or a vocabulary file (text, or a YouTube-VIS/LV-VIS JSON)",
                                           elem_id="test-vocab", type="filepath")
                    threshold = gr.Slider(0.0, 1.0, value=0.1, step=0.01, label="score threshold",
                                          elem_id="test-threshold")
                    max_det = gr.Slider(1, 300, value=100, step=1, label="max detections per image (key frame)",
                                        elem_id="test-max-det")
                    mode = gr.Radio(["detect", "segment"], value="segment" if opts.labeler.segmenter else "detect",
                                    label="mode", elem_id="test-mode")
                    media = gr.File(label="one image or a short video", elem_id="test-media", type="filepath")
                    video_as = gr.Radio([("tubes (tracked, as pseudo --engine owlv2_sam2)", "tubes"),
                                         ("frames (each labelled on its own)", "frames")], value="tubes",
                                        label="a video as", elem_id="test-video-as")
                    run_test = gr.Button("Run", variant="primary", elem_id="test-run")
                with gr.Column(scale=2):
                    test_status = gr.HTML(elem_id="test-status")
                    preview = gr.Gallery(label="annotated preview", elem_id="test-preview", columns=2,
                                         height=420, allow_preview=True, object_fit="contain")
                    test_table = gr.Dataframe(headers=labeling.DETECTION_COLUMNS, label="detections (or tubes)",
                                              elem_id="test-table", interactive=False)

        # ----------------------------------------------------------------- Batch
        with gr.Tab("Batch", id="batch", elem_id="tab-batch"):
            if not opts.labeler.ready:
                gr.HTML(error(opts.labeler.missing), elem_id="batch-models")
            gr.Markdown("Uses the prompts, threshold, maximum detections and mode of the Test tab.")
            with gr.Row():
                with gr.Column(scale=1):
                    batch_files = gr.File(label="images", file_count="multiple", elem_id="batch-files",
                                          type="filepath")
                    batch_folder = gr.Textbox(label="or a folder of images on the server", elem_id="batch-folder")
                    max_side = gr.Slider(64, 2048, value=640, step=32, label="ZIP image size (longest side)",
                                         elem_id="batch-size")
                    run_batch = gr.Button("Label all", variant="primary", elem_id="batch-run")
                with gr.Column(scale=2):
                    batch_status = gr.HTML(elem_id="batch-status")
                    gallery = gr.Gallery(label="annotated images", elem_id="batch-gallery", columns=4, height=360,
                                         object_fit="contain")
                    batch_zip = gr.File(label="ZIP: resized images + coco_export.json", elem_id="batch-zip",
                                        interactive=False)
                    batch_counts = gr.Dataframe(headers=labeling.COUNT_COLUMNS, label="per image",
                                                elem_id="batch-counts", interactive=False)

        # ---------------------------------------------------------------- Review
        with gr.Tab("Review", id="review", elem_id="tab-review"):
            review_state = gr.State(None)
            with gr.Row():
                review_json = gr.Textbox(value=opts.review_json, label="YouTube-VIS JSON (tubes, labels or "
                                         "predictions) on the server", elem_id="review-json", scale=3)
                review_upload = gr.File(label="or upload it", elem_id="review-upload", type="filepath", scale=1,
                                        height=140)
            with gr.Row():
                frame_root = gr.Textbox(value=opts.frame_root, label="frame folder (file_names are relative to it)",
                                        elem_id="review-frames", scale=3)
                videos_json = gr.Textbox(value=opts.videos_json, label="videos JSON (predictions only)",
                                         elem_id="review-videos-json", scale=2)
                open_btn = gr.Button("Open", variant="primary", elem_id="review-open", scale=1)
            review_status = gr.HTML(elem_id="review-status")
            video = gr.Dropdown(label="video", choices=[], elem_id="review-video", interactive=True)
            with gr.Row():
                with gr.Column(scale=3):
                    # The pictures carry their own titles; a component label would cover them.
                    sheet = gr.Image(label="contact sheet", elem_id="review-sheet", type="filepath",
                                     interactive=False, show_label=False)
                    gif = gr.Image(label="first frames (GIF)", elem_id="review-gif", type="filepath",
                                   interactive=False, show_label=False)
                with gr.Column(scale=2):
                    tubes = gr.Dataframe(headers=review.TUBE_COLUMNS, label="tubes", elem_id="review-tubes",
                                         interactive=False)
                    pick = gr.CheckboxGroup(label="select tubes", choices=[], elem_id="review-pick")
                    with gr.Row():
                        accept_btn = gr.Button("Accept", elem_id="review-accept")
                        reject_btn = gr.Button("Reject", variant="stop", elem_id="review-reject")
                        undo_btn = gr.Button("Undecide", elem_id="review-undecide")
                    with gr.Row():
                        new_name = gr.Textbox(label="rename to category", elem_id="review-rename-to", scale=3)
                        rename_btn = gr.Button("Rename", elem_id="review-rename", scale=1)
                    keep_undecided = gr.Checkbox(value=True, label="keep undecided tubes when saving",
                                                 elem_id="review-keep")
                    save_btn = gr.Button("Save curated JSON", variant="primary", elem_id="review-save")
                    saved = gr.File(label="curated JSON", elem_id="review-saved", interactive=False, height=110)

        # --------------------------------------------------------------- Metrics
        with gr.Tab("Metrics", id="metrics", elem_id="tab-metrics"):
            with gr.Row():
                run_dir = gr.Textbox(value=opts.run_dir, label="run directory (holds metrics.jsonl)",
                                     elem_id="metrics-run", scale=4)
                load_btn = gr.Button("Load", variant="primary", elem_id="metrics-load", scale=1)
            metrics_status = gr.HTML(elem_id="metrics-status")
            with gr.Row():
                loss_plot = gr.Image(label="losses", elem_id="metrics-loss", type="filepath", interactive=False)
                ap_plot = gr.Image(label="AP", elem_id="metrics-ap", type="filepath", interactive=False)
            ap_tab = gr.Dataframe(label="AP (%) per evaluation", elem_id="metrics-table", interactive=False)

        # --------------------------------------------------------------- handlers
        @_guarded(3)
        def on_test(media_path, text, vocab_path, thr, md, as_, n_max, request: gr.Request):
            if not media_path:
                raise WsovvisError("no image or video: upload one in the Test tab first")
            res = labeling.run_test(opts.labeler, media_path, text, vocab_path, thr, md, sdir(request),
                                    max_frames=opts.max_preview_frames, video_as=as_, max_detections=n_max)
            return ok(res.note), res.images, gr.update(value=res.rows, headers=res.headers)

        def on_setting(media_path, text, vocab_path, thr, md, as_, n_max, request: gr.Request):
            """A changed threshold or mode re-runs the preview when there is something to preview."""
            if not media_path or not opts.labeler.ready:
                return gr.skip(), gr.skip(), gr.skip()
            return on_test(media_path, text, vocab_path, thr, md, as_, n_max, request)

        test_inputs = [media, prompts_text, prompts_file, threshold, mode, video_as, max_det]
        test_outputs = [test_status, preview, test_table]
        # Model calls share one slot (the models are not thread-safe, and one GPU runs one job at a time);
        # Review and Metrics stay responsive while a batch runs.
        models = {"concurrency_limit": 1, "concurrency_id": "models"}
        run_test.click(on_test, test_inputs, test_outputs, **models)
        media.upload(on_test, test_inputs, test_outputs, **models)
        threshold.release(on_setting, test_inputs, test_outputs, **models)
        max_det.release(on_setting, test_inputs, test_outputs, **models)
        mode.input(on_setting, test_inputs, test_outputs, **models)
        video_as.input(on_setting, test_inputs, test_outputs, **models)
        prompts_text.blur(on_setting, test_inputs, test_outputs, **models)
        prompts_file.upload(on_setting, test_inputs, test_outputs, **models)

        @_guarded(4)
        def on_batch(files, folder, text, vocab_path, thr, md, n_max, side, request: gr.Request,
                     progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - Gradio's progress idiom
            # The folder run's tqdm bar (the one `wsovvis autolabel` prints) drives the page's progress bar.
            res = labeling.run_batch(opts.labeler, files or [], folder, text, vocab_path, thr, md, int(side),
                                     sdir(request), max_detections=int(n_max), progress=True)
            return ok(res.note), res.images, str(res.zip_path), res.rows

        run_batch.click(on_batch, [batch_files, batch_folder, prompts_text, prompts_file, threshold, mode, max_det,
                                   max_side],
                        [batch_status, gallery, batch_zip, batch_counts], **models)

        def _vid(vid) -> int:
            if vid is None:
                raise WsovvisError("choose a video first")
            return int(vid)

        def _video_view(s: review.ReviewSession, vid, request) -> tuple:
            vid = _vid(vid)
            png, gif_path, note = review_render.render_video(s, vid, sdir(request) / "review",
                                                             gif_frames=opts.max_preview_frames)
            return (str(png), str(gif_path) if gif_path else None, review.tube_rows(s, vid),
                    gr.update(choices=review.tube_choices(s, vid), value=[]), note)

        @_guarded(7)
        def on_open(path, upload, frames, vjson, request: gr.Request):
            s = review.open_review(upload or path, frames, vjson)
            choices = review.video_choices(s)
            first = choices[0][1]
            png, gif_path, rows, pick_update, note = _video_view(s, first, request)
            notes = [f"opened {s.source.name}: {len(choices)} videos, {len(s.ds.annotations)} {s.kind}"] + s.notes
            notes += [note] if note else []
            return (ok("\n".join(notes)), s, gr.update(choices=choices, value=first), png, gif_path, rows,
                    pick_update)

        open_btn.click(on_open, [review_json, review_upload, frame_root, videos_json],
                       [review_status, review_state, video, sheet, gif, tubes, pick])

        def _need(s):
            if s is None:
                raise WsovvisError("open a YouTube-VIS JSON first (Review tab: JSON + frame folder, then Open)")
            return s

        @_guarded(5)
        def on_video(s, vid, request: gr.Request):
            s = _need(s)
            if vid is None:
                raise WsovvisError("choose a video")
            png, gif_path, rows, pick_update, note = _video_view(s, vid, request)
            return ok(note), png, gif_path, rows, pick_update

        video.input(on_video, [review_state, video], [review_status, sheet, gif, tubes, pick])

        def _decider(decision: str):
            @_guarded(7)
            def on_decide(s, vid, chosen, request: gr.Request):
                s, vid = _need(s), _vid(vid)  # checked before anything changes
                review.decide(s, chosen or [], decision)
                png, gif_path, rows, pick_update, note = _video_view(s, vid, request)
                msg = f"{decision}: tube{'s' * (len(chosen) > 1)} {', '.join(f'#{t}' for t in chosen)}"
                videos = gr.update(choices=review.video_choices(s), value=vid)
                return ok(msg), s, png, gif_path, rows, pick_update, videos

            return on_decide

        outs = [review_status, review_state, sheet, gif, tubes, pick, video]
        accept_btn.click(_decider(review.ACCEPTED), [review_state, video, pick], outs)
        reject_btn.click(_decider(review.REJECTED), [review_state, video, pick], outs)
        undo_btn.click(_decider(review.UNDECIDED), [review_state, video, pick], outs)

        @_guarded(7)
        def on_rename(s, vid, chosen, name, request: gr.Request):
            s, vid = _need(s), _vid(vid)  # checked before anything changes
            review.rename(s, chosen or [], name)
            png, gif_path, rows, pick_update, _ = _video_view(s, vid, request)
            return (ok(f"renamed {len(chosen)} tube(s) to '{name.strip()}'"), s, png, gif_path, rows, pick_update,
                    gr.skip())

        rename_btn.click(on_rename, [review_state, video, pick, new_name], outs)

        @_guarded(2)
        def on_save(s, keep, request: gr.Request):
            s = _need(s)
            # An uploaded file sits in Gradio's cache: "next to the input" is then the session folder.
            path, summary = review.save_curated(s, keep, fallback_dir=sdir(request))
            return ok(summary), str(path)

        save_btn.click(on_save, [review_state, keep_undecided], [review_status, saved])

        @_guarded(4)
        def on_metrics(path, request: gr.Request):
            view = run_metrics.read_run(path)
            loss_png, ap_png = run_metrics.render_plots(view, sdir(request) / "metrics")
            headers, rows = run_metrics.ap_table(view.rows)
            notes = [f"{view.run_dir}: {len(view.rows)} metric lines, {len(rows)} evaluations"]
            if view.skipped:
                notes.append(f"{view.skipped} unreadable line(s) skipped")
            if run_metrics.final_summary(view):
                notes.append(run_metrics.final_summary(view))
            if not rows:
                notes.append("no evaluation yet: the AP plot and table stay empty")
            table = gr.update(value=rows, headers=headers) if rows else gr.update(value=None)
            return ok("\n".join(notes)), str(loss_png) if loss_png else None, str(ap_png) if ap_png else None, table

        load_btn.click(on_metrics, [run_dir], [metrics_status, loss_plot, ap_plot, ap_tab])

        def on_page_load(request: gr.Request) -> tuple:
            """Pre-filled paths from the command line are opened when the page loads."""
            out: list[Any] = [gr.skip()] * 11
            if opts.review_json and opts.frame_root:
                out[:7] = on_open(opts.review_json, None, opts.frame_root, opts.videos_json, request)
            if opts.run_dir:
                out[7:] = on_metrics(opts.run_dir, request)
            return tuple(out)

        demo.load(on_page_load, None, [review_status, review_state, video, sheet, gif, tubes, pick,
                                       metrics_status, loss_plot, ap_plot, ap_tab])
        def on_unload(request: gr.Request):
            opts.dirs.remove_session(getattr(request, "session_hash", None))

        demo.unload(on_unload)
    return demo
