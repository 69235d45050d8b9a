"""Smoke tests of ``examples/dmps_restore.py`` (DMPS, DPS and the pseudo-inverse on 32 x 32 patches)
at tiny size on the CPU, with the committed prior checkpoint.

They check the example's numbers, not just that it ran: the measurements and the
pseudo-inverse baseline are recomputed here without sdekit's operators, its PSNR / SSIM
with skimage, and DMPS must beat the baseline where it does so robustly and explain the
measurements to about their noise level.
"""
import math
import os

import pytest
import torch

from _examples import assert_help_lists, assert_refused, load_example

pytestmark = pytest.mark.examples

SIGMA_Y = {"deblur": 0.05, "sr2": 0.05, "inpaint": 0.05, "color": 0.05, "denoise": 0.2}   # the example's docstring

@pytest.fixture(scope="module")
def dr():
    return load_example("dmps_restore", images=True)


@pytest.fixture(scope="module")
def checkpoint(dr):
    if not os.path.exists(dr.CHECKPOINT):
        pytest.skip(f"no prior checkpoint at {dr.CHECKPOINT}")


@pytest.fixture(scope="module")
def quick(dr, checkpoint):
    """Every task, 2 steps: the measurements and the baseline do not depend on the steps."""
    return dr.main(["--images", "4", "--steps", "2", "--no-figure", "--quiet"])


@pytest.fixture(scope="module")
def run50(dr, checkpoint):
    """The tasks where DMPS beats the pseudo-inverse, at 50 steps (about 11 s on one thread)."""
    return dr.main(["--images", "4", "--steps", "50", "--tasks", "deblur", "inpaint", "denoise",
                    "--no-figure", "--quiet"])


def psnr_ref(x, x0):
    """10 log10(1 / mse) on the [0, 1] scale, x clipped to [-1, 1], per image."""
    mse = ((x.double().clamp(-1, 1) - x0.double()) / 2).pow(2).flatten(1).mean(1)
    return -10.0 * torch.log10(mse)


def ssim_ref(x, x0):
    from skimage.metrics import structural_similarity
    a, b = ((x.double().clamp(-1, 1) + 1) / 2).numpy(), ((x0.double() + 1) / 2).numpy()
    return torch.tensor([structural_similarity(p, q, data_range=1.0, channel_axis=0)
                         for p, q in zip(a, b, strict=True)])


def test_dmps_restore_help(dr, capsys):
    assert_help_lists(dr.main, ("--device", "--steps", "--seed", "--images", "--tasks", "--zeta", "--checkpoint",
                                "--train", "--train-steps", "--width", "--no-figure", "--quiet"), capsys)


@pytest.mark.parametrize("bad", [["--images", "0"], ["--images", "257"], ["--steps", "0"], ["--width", "12"],
                                 ["--zeta", "-1"], ["--tasks", "jpeg"]])
def test_dmps_restore_rejects_bad_arguments(dr, bad, capsys):
    assert_refused(dr.main, bad, capsys)


def test_dmps_restore_measurements_and_pinv_baseline_are_right(quick):
    x0, ys, restored, rows = quick["clean"], quick["y"], quick["restored"], quick["rows"]
    assert x0.shape == (4, 3, 32, 32) and x0.min() >= -1 and x0.max() <= 1
    assert list(rows) == ["deblur", "sr2", "inpaint", "color", "denoise"]
    # A x0 and A^+ y without sdekit's operators
    k = torch.exp(-(torch.arange(9, dtype=torch.float64) - 4) ** 2 / (2 * 1.5**2))
    k = k / k.sum()
    blur = torch.nn.functional.conv2d(x0.double(), (k[:, None] * k[None, :]).expand(3, 1, 9, 9), padding=4, groups=3)
    clean = {"deblur": blur, "sr2": torch.nn.functional.avg_pool2d(x0, 2), "color": x0.mean(1), "denoise": x0}
    for task, want in clean.items():                   # y - A x0 is the noise: 1024 values or more per image
        noise = ys[task].double() - want.flatten(1).double()
        assert abs(float(noise.std()) / SIGMA_Y[task] - 1) < 0.1, task
        assert abs(float(noise.mean())) < 0.1 * SIGMA_Y[task], task
    pinv = {"sr2": ys["sr2"].reshape(4, 3, 16, 16).repeat_interleave(2, 2).repeat_interleave(2, 3),
            "color": ys["color"].reshape(4, 1, 32, 32).expand(4, 3, 32, 32),
            "denoise": ys["denoise"].reshape(4, 3, 32, 32)}
    # inpainting: half of the pixels kept, the same ones in every channel of every image, zero elsewhere
    kept = restored["inpaint"]["pinv"] != 0
    assert torch.equal(kept, kept[:1, :1].expand_as(kept)) and abs(float(kept.double().mean()) - 0.5) < 0.05
    pinv["inpaint"] = torch.zeros(4, 3, 32, 32).masked_scatter(kept, ys["inpaint"])
    assert abs(float((pinv["inpaint"] - x0)[kept].std()) / SIGMA_Y["inpaint"] - 1) < 0.1
    for task, want in pinv.items():
        torch.testing.assert_close(restored[task]["pinv"], want, rtol=0, atol=1e-6, msg=task)
        assert rows[task]["pinv"]["psnr"] == pytest.approx(float(psnr_ref(want, x0).mean()), abs=1e-4), task
        assert rows[task]["pinv"]["ssim"] == pytest.approx(float(ssim_ref(want, x0).mean()), abs=1e-5), task
        assert rows[task]["pinv"]["residual"] < 1e-5, task           # A A^+ y = y: these A have full row rank
    # the reported numbers are those of the returned restorations
    for task, methods in rows.items():
        for m in ("DPS", "DMPS", "DMPS-sc", "DMPS-code"):
            x = restored[task][m]
            assert x.shape == x0.shape and torch.isfinite(x).all(), (task, m)
            assert methods[m]["psnr"] == pytest.approx(float(psnr_ref(x, x0).mean()), abs=1e-4), (task, m)
            assert methods[m]["ssim"] == pytest.approx(float(ssim_ref(x, x0).mean()), abs=1e-5), (task, m)
            assert methods[m]["seconds_per_image"] > 0


def test_dmps_restore_beats_the_pseudo_inverse_and_fits_the_measurements(run50):
    # Margins checked over seeds 0-9 at this size (4 images, 50 steps); the worst value seen is in brackets.
    rows = run50["rows"]
    gain = {task: rows[task]["DMPS"]["psnr"] - rows[task]["pinv"]["psnr"] for task in rows}
    assert gain["deblur"] > 14.0        # [+18.4 dB: A^+ y amplifies the noise by up to 1/S ~ 1e10]
    assert gain["inpaint"] > 4.0        # [+5.6 dB over zero filling]
    assert gain["denoise"] > 3.5        # [+4.7 dB over the noisy patch]
    assert rows["denoise"]["DMPS"]["ssim"] > rows["denoise"]["pinv"]["ssim"] + 0.15     # [+0.21]
    for task, least in (("deblur", 14.0), ("inpaint", 8.0), ("denoise", 3.0)):          # DPS [+17.1, +10.2, +4.0 dB]
        assert rows[task]["DPS"]["psnr"] > rows[task]["pinv"]["psnr"] + least, task
    # DMPS explains y about as well as the clean patch (residual sigma_y) where A smooths or keeps
    # everything [deblur 0.97-1.01 sigma_y, denoise 0.82-0.92: a little of the noise is kept]; on
    # inpainting it fits the kept pixels less well than the truth does [1.35-1.68 sigma_y].
    ratio = {task: rows[task]["DMPS"]["residual"] / SIGMA_Y[task] for task in rows}
    assert 0.85 < ratio["deblur"] < 1.15
    assert 0.7 < ratio["denoise"] < 1.05
    assert 1.2 < ratio["inpaint"] < 2.0


def test_dmps_restore_is_repeatable_task_by_task(dr, quick):
    again = dr.main(["--images", "4", "--steps", "2", "--tasks", "inpaint", "--no-figure", "--quiet"])
    for m, x in again["restored"]["inpaint"].items():
        assert torch.equal(x, quick["restored"]["inpaint"][m]), m
        for key in ("psnr", "ssim", "residual"):
            assert again["rows"]["inpaint"][m][key] == quick["rows"]["inpaint"][m][key], (m, key)


def test_dmps_restore_trains_saves_and_reloads_a_tiny_prior(dr, tmp_path):
    from _imaging import load_checkpoint
    path = str(tmp_path / "prior.pt")
    small = ["--train-steps", "20", "--width", "8", "--checkpoint", path, "--images", "2", "--steps", "3",
             "--tasks", "denoise", "--quiet"]
    try:
        import matplotlib  # noqa: F401
        figure = ["--out", str(tmp_path)]
    except ImportError:
        figure = ["--no-figure"]
    trained = dr.main(["--train", *small, *figure])
    net, meta = load_checkpoint(path)
    assert net.config["width"] == 8 and meta == trained["prior"]
    assert meta["config"]["steps"] == 20 and math.isfinite(meta["final_loss"]) and 0 < meta["final_loss"] < 2
    if trained["figure"] is not None:
        assert os.path.getsize(trained["figure"]) > 5_000
    loaded = dr.main([*small, "--no-figure"])                       # no --train: loads what was saved
    assert loaded["prior"] == meta
    assert loaded["rows"]["denoise"]["DMPS"]["psnr"] == trained["rows"]["denoise"]["DMPS"]["psnr"]
    with pytest.raises(SystemExit):                                  # a checkpoint of another config
        dr.main([*small, "--width", "16", "--no-figure"])


def test_dmps_code_transcription_is_sdekits_dmps_with_the_papers_settings_and_clip_x0_its_clipping(dr, checkpoint):
    """``dmps_code_sample`` with ``scale = 1``, no clipping and the likelihood at ``x_t`` is
    ``DMPS.sample`` on the same normals; with clipping (likelihood at ``x_t``, ``scale`` 1.75) it is
    ``DMPS(lam=1.75, clip_x0=True)``: so the ``DMPS-code`` row differs from ``DMPS-sc`` only by where
    the likelihood gradient is evaluated."""
    import _imaging as im
    from sdekit import VPSDE
    from sdekit.inverse import DMPS

    sde = VPSDE()
    net, _ = im.load_checkpoint(dr.CHECKPOINT, "cpu")
    score = im.score_from_noise(sde, net.double())           # float64 throughout: agreement to rounding
    x0 = dr.held_out_patches(2, 0).double()
    op = dr.make_operator("inpaint", 0)
    g = torch.Generator().manual_seed(1)
    y = op(x0) + 0.05 * torch.randn(op(x0).shape, generator=g, dtype=torch.float64)
    x_T = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    with torch.no_grad():
        for lam, clip in ((1.0, None), (dr.CODE_SCALE, dr.CODE_CLIP)):
            want = DMPS(sde, op, 0.05, lam=lam, steps=6, clip_x0=clip).sample(score, y, seed=3, x_T=x_T)
            got = dr.dmps_code_sample(sde, score, op, y, 0.05, x_T, 6, 3, scale=lam, clip=clip, likelihood_at="x_t")
            torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
        code = dr.dmps_code_sample(sde, score, op, y, 0.05, x_T, 6, 3)
        assert float((code - want).abs().max()) > 1e-2                       # the evaluation point matters
