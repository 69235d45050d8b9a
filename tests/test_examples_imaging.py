"""The shared image-example helpers (``examples/_imaging.py``) against independent references."""
import math

import numpy as np
import pytest
import torch

from _examples import load_example

_imaging = load_example("_imaging", images=True)

pytestmark = pytest.mark.examples


def test_cut_patches_are_the_windows_on_the_stride_grid():
    img = torch.arange(2 * 10 * 12, dtype=torch.float64).reshape(2, 10, 12)
    p = _imaging.cut_patches(img, 4, 3)
    corners = [(i, j) for i in range(0, 7, 3) for j in range(0, 9, 3)]
    assert p.shape == (len(corners), 2, 4, 4)
    for k, (i, j) in enumerate(corners):
        torch.testing.assert_close(p[k], img[:, i:i + 4, j:j + 4], rtol=0, atol=0)


def test_random_crops_are_aligned_windows_or_their_mirror_images():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(50, 2, 12, 12, generator=g)
    b = 2 * a + 1
    ca, cb = _imaging.random_crops([a, b], 5, g)
    assert ca.shape == (50, 2, 5, 5)
    torch.testing.assert_close(cb, 2 * ca + 1)
    flipped = 0
    for k in range(50):
        windows = _imaging.cut_patches(a[k], 5, 1)
        plain = (windows == ca[k]).flatten(1).all(1).any()
        mirror = (windows.flip(-1) == ca[k]).flatten(1).all(1).any()
        assert bool(plain or mirror)
        flipped += int(bool(mirror and not plain))
    assert 10 < flipped < 40


def test_images_are_scaled_and_train_test_disjoint():
    assert not set(_imaging.TRAIN_GRAY) & set(_imaging.TEST_GRAY)
    assert not set(_imaging.TRAIN_RGB) & set(_imaging.TEST_RGB)
    g = _imaging.image_patches(["camera"], 32, color=False)
    assert g.shape == (16 * 16, 1, 32, 32) and g.dtype == torch.float32
    assert -1.0 <= float(g.min()) < -0.9 and 0.9 < float(g.max()) <= 1.0
    c = _imaging.image_patches(["astronaut"], 64, color=True)
    assert c.shape == (64, 3, 64, 64)
    with pytest.raises(ValueError, match="grey image"):
        _imaging.load_image("camera", color=True)


def test_jpeg_degrades_with_lower_quality_and_keeps_shape():
    img = _imaging.load_image("camera", color=False)[:, :128, :128]
    errs = [np.sqrt(np.mean((_imaging.jpeg_compress(img, q) - img) ** 2)) for q in (95, 20, 10)]
    assert _imaging.jpeg_compress(img, 10).shape == img.shape
    assert errs[0] < 0.004 < errs[1] < errs[2] < 0.05       # RMS on [0, 1]: 0.002, 0.007, 0.013 for camera
    rgb = _imaging.load_image("astronaut", color=True)[:, :64, :64]
    assert _imaging.jpeg_compress(rgb, 20).shape == rgb.shape


def test_psnr_and_ssim_match_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(3, 3, 16, 16, generator=g, dtype=torch.float64) * 2 - 1
    x = (ref + 0.1 * torch.randn(ref.shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    p, s = _imaging.psnr(x, ref), _imaging.ssim(x, ref)
    for i in range(3):
        a, b = ((ref[i] + 1) / 2).numpy(), ((x[i] + 1) / 2).numpy()
        assert abs(float(p[i]) - peak_signal_noise_ratio(a, b, data_range=1.0)) < 1e-10
        assert abs(float(s[i]) - structural_similarity(b, a, data_range=1.0, channel_axis=0)) < 1e-12


def test_sliced_wasserstein_of_a_shift_is_the_mean_projected_shift():
    # Shifting a law by delta moves every projection by theta . delta: SW1 = E_theta |theta . delta|,
    # which for theta uniform on the circle is |delta| * 2 / pi.
    g = torch.Generator().manual_seed(1)
    a = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    delta = torch.tensor([0.3, -0.4], dtype=torch.float64)
    assert _imaging.sliced_wasserstein(a, a) == 0.0
    sw = _imaging.sliced_wasserstein(a, a + delta, projections=4000)   # sd of the estimate 0.0024
    assert abs(sw - 0.5 * 2 / math.pi) < 0.01
    a, b = (torch.randn(4000, 2, generator=g, dtype=torch.float64) for _ in range(2))
    assert _imaging.sliced_wasserstein(a, b) < 0.06                    # same law, other draws: ~ N^-1/2
    with pytest.raises(ValueError):
        _imaging.sliced_wasserstein(a, a[:10])


def test_patch_swd_sees_blur_and_ignores_brightness():
    clean = _imaging.image_patches(["camera"], 32, color=False)[:64].double()
    blurred = torch.nn.functional.avg_pool2d(clean, 3, stride=1, padding=1, count_include_pad=False)
    assert _imaging.patch_swd(clean, clean) == 0.0
    assert _imaging.patch_swd(clean, (clean + 0.2).clamp(-1, 1)) < 0.25 * _imaging.patch_swd(clean, blurred)


def test_unet_shapes_conditioning_and_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = _imaging.ScoreUNet(1, cond_channels=1, width=8)
    x, y, t = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 16, 16), torch.rand(2)
    assert net(x, t, y).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="cond_channels"):
        net(x, t)
    with pytest.raises(ValueError, match="takes the time"):
        net(x, None, y)
    for p in net.parameters():            # zero-initialised output convs: perturb before saving
        p.data.add_(0.01 * torch.randn_like(p))
    path = str(tmp_path / "net.pt")
    _imaging.save_checkpoint(path, net, {"steps": 3, "torch": torch.__version__})
    back, meta = _imaging.load_checkpoint(path)
    assert meta == {"steps": 3, "torch": str(torch.__version__)}
    torch.testing.assert_close(back(x, t, y), net(x, t, y), rtol=0, atol=0)


def test_score_from_noise_divides_by_the_marginal_std():
    from sdekit import VPSDE
    sde = VPSDE()
    net = _imaging.ScoreUNet(1, width=8)
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0.1, 0.5, 0.9])
    got = _imaging.score_from_noise(sde, net)(x, t)
    want = -net(x, t) / sde.marginal_std(t).reshape(3, 1, 1, 1)
    torch.testing.assert_close(got, want)


def test_training_lowers_the_loss_of_a_simple_regression():
    # a net without time input learns y -> 2 y on random data: the EMA weights fit better than at the start
    g = torch.Generator().manual_seed(2)
    data = torch.randn(256, 1, 8, 8, generator=g)
    net = _imaging.ScoreUNet(1, width=8, time=False)

    def loss_fn(model, idx):
        return (model(data[idx]) - 2 * data[idx]).pow(2).mean()

    with torch.no_grad():
        before = float(loss_fn(net, torch.arange(256)))
    avg, losses = _imaging.train(net, loss_fn, data, steps=150, batch=32, lr=3e-3, ema=0.9, progress=False)
    assert len(losses) == 150
    assert float(loss_fn(avg, torch.arange(256))) < 0.3 * before
