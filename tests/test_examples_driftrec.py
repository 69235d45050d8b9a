"""Smoke tests of ``examples/driftrec_jpeg.py``: its data are what they say, its numbers are
recomputed independently, and the committed nets restore JPEG patches."""
import io

import numpy as np
import pytest

from _examples import assert_help_lists, assert_refused, load_example

driftrec_jpeg = load_example("driftrec_jpeg", images=True)

pytestmark = pytest.mark.examples


def _independent_jpeg_patches(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """Clean and JPEG 32 x 32 grey patches of the test images, straight from skimage and Pillow."""
    import skimage.data
    from PIL import Image
    clean, jpeg = [], []
    for name in ("camera", "coins"):
        img = np.asarray(getattr(skimage.data, name)())
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        for i in range(0, img.shape[0] - 31, 32):
            for j in range(0, img.shape[1] - 31, 32):
                clean.append(img[i:i + 32, j:j + 32] / 255.0)
                jpeg.append(dec[i:i + 32, j:j + 32] / 255.0)
    return np.stack(clean), np.stack(jpeg)


def test_help(capsys):
    assert_help_lists(driftrec_jpeg.main, ("--device", "--steps", "--seed", "--images", "--train", "--no-figure"),
                      capsys)


def test_bad_arguments_are_refused(capsys):
    for argv in (["--steps", "0"], ["--images", "0"], ["--width", "12"]):
        assert_refused(driftrec_jpeg.main, argv, capsys)


@pytest.fixture(scope="module")
def run():
    return driftrec_jpeg.main(["--images", "16", "--steps", "60", "--no-figure", "--quiet", "--threads", "1"])


def test_jpeg_row_matches_an_independent_pipeline(run):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    for quality in (10, 20):
        clean, jpeg = _independent_jpeg_patches(quality)
        pick = run["test_patches"]
        psnr = np.mean([peak_signal_noise_ratio(clean[k], jpeg[k], data_range=1.0) for k in pick])
        ssim = np.mean([structural_similarity(clean[k], jpeg[k], data_range=1.0) for k in pick])
        row = run["rows"][(quality, "JPEG")]
        assert abs(row["psnr"] - psnr) < 1e-4 and abs(row["ssim"] - ssim) < 1e-4


def test_committed_nets_restore(run):
    # Margins measured with the committed nets at 16 patches, 60 steps, seeds 0-3: L2 gains 0.52-0.95 dB
    # over JPEG; the SDE samplers lose 0.6-3.5 dB PSNR (posterior samples: an exact sampler loses 3 dB
    # against the posterior mean) and lower the sub-patch SWD at quality 10 to 0.63-0.68 of the
    # smaller of JPEG's and L2's.  A width-8 net trained for 20 steps loses 16 dB.
    rows = run["rows"]
    for q in (10, 20):
        jpeg, l2 = rows[(q, "JPEG")], rows[(q, "L2")]
        assert l2["psnr"] > jpeg["psnr"] + 0.3
        for sde in ("OUVE", "TSDVE"):
            assert rows[(q, sde)]["psnr"] > jpeg["psnr"] - 5.0
    for sde in ("OUVE", "TSDVE"):
        assert rows[(10, sde)]["swd"] < 0.85 * min(rows[(10, "JPEG")]["swd"], rows[(10, "L2")]["swd"])
    assert rows[(10, "JPEG")]["psnr"] < rows[(20, "JPEG")]["psnr"]


def test_tiny_training_writes_loadable_checkpoints(tmp_path):
    out = driftrec_jpeg.main(["--train", "--train-steps", "3", "--batch", "4", "--width", "8", "--images", "2",
                              "--steps", "2", "--checkpoints", str(tmp_path), "--no-figure", "--quiet",
                              "--threads", "1"])
    for method in ("l2", "ouve", "tsdve"):
        net, meta = driftrec_jpeg.im.load_checkpoint(str(tmp_path / f"driftrec_{method}.pt"))
        assert meta["steps"] == 3 and np.isfinite(meta["final_loss"]) and net.config["width"] == 8
    assert all(np.isfinite(r["psnr"]) for r in out["rows"].values())
