"""Every default of the weight-free pseudo-tube generator that was chosen by looking at real data.

The real data is the shared DAVIS-2016 sample (8 sequences x 30 frames, ``davis2016val_sample``).
Numbers were measured with ``bench/pseudo_davis.py`` (class-agnostic AP50 with the YouTube-VIS
evaluator; J = mean per-frame IoU of the union of all tubes with the GT foreground). A number
measured on the same 8 sequences the value was chosen on is *in-sample*; the held-out figure
(leave-one-sequence-out: chosen on 7, scored on the 8th) is printed by the bench beside it and is
the one to quote.

=========================================  ========  =====================================================
setting (where)                            value     chosen on
=========================================  ========  =====================================================
cut ``tau`` (``engines.CLASSIC_CUT``)      0.4       the leave-one-out grid's choice on all 8 (axis {0.4,
                                                     0.5, 0.6}; 0.5 until the coherence gate came, which
                                                     made 0.4 the better value: in-sample J 0.677 vs
                                                     0.655, AP50 1.00 vs 0.86 at coherence 0.15). Costs on
                                                     crowded synthetic shapes, which it joins when they
                                                     touch: demo AP50 35.2 -> 31.9, tests' set 6 -> 3 of
                                                     11 objects; ``--tau 0.5`` for such scenes
cut ``num_cuts``, ``min_saliency``         4, 0.3    earlier sessions on this sample (not recorded)
``ClassicFeatures`` weights and scales     see its   earlier sessions on this sample and the synthetic
(w_obj .5, w_col 1, w_mot .7, col_scale    __init__  videos (not recorded)
20, mot_scale .5, floor_px .6,
still_min_p .9, sal_gamma .7)
``MaskCutEngine.edge_ref``,                3.0, 0.4  earlier sessions on this sample (not recorded)
``prior_weight``
clip linker ``link_iou``                   0.5       in-sample AP50 0.69 (0.3: 0.69 as well once
(``cliplink.ClipLinkParams``)                        appearance re-identification is on; 0.58 both
                                                     without it); a leave-one-out grid axis {0.3, 0.5}
clip linker ``overlap = "min"``            min       in-sample AP50 0.58 vs 0.53 with IoU (link_iou 0.5,
                                                     before re-identification); also required by the
                                                     synthetic crossing test (occluded parts)
clip linker ``merge_cos``                  0.85      the online tracker's value (``CleanupParams``); with
                                                     it in-sample AP50 0.58 -> 0.69 (bmx-trees, occlusion)
clip linker ``window``, ``extend``         4, 4      in-sample: extend 2 / 4 / 30 -> AP50 0.69 / 0.69 /
                                                     0.67, J 0.572 / 0.571 / 0.559; window 8 no better
``MaskCutEngine.min_keep``                 0.5       identity switches 3 -> 0 in-sample (slivers left by a
                                                     better tube flipped between object and background);
                                                     AP50 unchanged (0.69)
``ClassicFeatures.fb_check``               on        tried because the sample's false positives (wake,
(forward-backward flow check, Sundaram               reflection, spray) failed the check 2-10x more often
et al.'s published constants, untuned)               than the objects; in-sample J 0.571 -> 0.601, AP50
                                                     0.691 -> 0.720, but identity switches 0 -> 6.
                                                     Costs on the demo's synthetic 96x128 videos (AP
                                                     31.8 -> 13.2): ``--no_flow_check`` turns it off
two-sided gap filling                      on        in-sample identity switches 6 -> 0 (bmx-trees: a
(``cliplink.fill_between``) and                      one-sided fill lagged onto the wall behind a tree;
``ClipLinkParams.member_cos`` 0.85 (the              kite-surf: person-only masks in a person+spray tube);
same value as ``merge_cos``)                         J 0.601 -> 0.594, AP50 0.720 -> 0.700
outline snapping (``MaskCutEngine.snap_px``  8 px      set on principle (half a 16-px cell: the cut places
8, `refine.snap_to_prior`)                           outlines to within a cell); in-sample J 0.594 ->
                                                     0.615, AP50 0.700 unchanged (before the next row)
coherence gate of the cut's objectness     0.15      a leave-one-out grid axis {0.15, 0.2, 0.3}, chosen
(``ClassicFeatures.coherence_px``,                   there; tried because the flow's local standard
`classic_features.flow_coherence`)                   deviation was 1.3-10x higher on every sequence's
                                                     false positives than on its true positives. In-sample
                                                     (tau 0.5): J 0.615 -> 0.653 / 0.649 / 0.635 / 0.639
                                                     at 0.15 / 0.2 / 0.3 / 0.4; AP50 0.700 -> 0.856 at
                                                     0.15 and 0.2. Window 9 px (``coherence_win``, about
                                                     half a cell, not tuned; 5 and 13 px tried at 0.2
                                                     with the gated prior: J 0.635 / 0.646 vs 0.643,
                                                     AP50 0.856 / 0.752 vs 0.856)
Kuwahara windows in ``flow_coherence``     on        design, checked in-sample at 0.2: J 0.643 vs 0.638
                                                     with the centred window
ungated objectness as the outline prior    on        design, checked in-sample at 0.2: J 0.649 vs 0.643
(``VideoFeatures.pixel_saliency``)                   with the gated one (thin parts: legs, wheels)
=========================================  ========  =====================================================

Leave-one-sequence-out over the grid coherence {0.15, 0.2, 0.3} x tau {0.4, 0.5, 0.6} x link_iou
{0.3, 0.5} (bench run of 2026-12-06, after the last rows; a fold chooses by AP50 on its 7
sequences, ties broken by their mean J, so the choice does not lean on the defaults): 7 folds chose
coherence 0.15 / tau 0.4, blackswan's fold coherence 0.2 / tau 0.4. Held-out: AP50 1.00 pooled over
the 8 held-out sequences (every one's top tube overlaps the object with IoU >= 0.5), J 0.671 ±
0.138, 0 identity switches. In-sample (the defaults, the grid's choice on all 8): AP50 1.00, J 0.677.
Before this session (tau {0.4, 0.5, 0.6} x link_iou {0.3, 0.5}, ties to the defaults): held-out
AP50 0.700, J 0.594 ± 0.192, 0 identity switches.

Set on principle and not tuned on the data (checked that they do not hurt: in-sample AP50 and J
identical with them switched off): ``hole_px`` 1.0 (holes moving within 1 px of their mask are
filled), ``still_px`` 0.6 (the features' motion floor) and ``border_frac`` 0.5 (camera tubes).
"""

from __future__ import annotations
