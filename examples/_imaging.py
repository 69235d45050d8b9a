"""Shared pieces of the image examples: offline patches, a small score U-Net, its training
loop, checkpoints, metrics and figures.

Nothing here is numerics of sdekit: the SDEs, solvers, likelihood scores and the training
objective come from the library; this module only supplies what an image experiment needs
around them, so that ``driftrec_jpeg.py`` and ``dmps_restore.py`` stay short.

Data.  Images ship inside scikit-image (``skimage.data``; no download), scaled to
``[-1, 1]`` and cut into ``size x size`` patches.  Training and test images are disjoint
(``TRAIN_*`` / ``TEST_*``).

Network.  ``ScoreUNet`` is a small U-Net (two resolutions below the input, residual blocks
with GroupNorm and SiLU, the time entering every block through a sinusoidal embedding) that
predicts the noise ``z`` of ``x_t = mean + std(t) z``; the score is ``-net / std(t)``
(:func:`score_from_noise`), the noise-prediction form for which
:func:`sdekit.losses.denoising_score_matching` is the plain mean-squared error.
"""
from __future__ import annotations

import copy
import math
import os
import time
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from _figures import OUT_DIR, pyplot, save_figure

__all__ = [
    "TRAIN_GRAY", "TEST_GRAY", "TRAIN_RGB", "TEST_RGB", "CHECKPOINTS", "OUT_DIR",
    "load_image", "cut_patches", "image_patches", "jpeg_compress", "random_crops",
    "ScoreUNet", "score_from_noise", "train", "save_checkpoint", "load_checkpoint", "train_rgb_net",
    "psnr", "ssim", "sliced_wasserstein", "patch_swd", "save_grid", "Stopwatch",
]

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKPOINTS = os.path.join(HERE, "checkpoints")

# Disjoint train / test images from skimage.data (all bundled with the wheel).
TRAIN_GRAY = ("astronaut", "brick", "chelsea", "coffee", "grass", "gravel", "hubble_deep_field",
              "immunohistochemistry", "moon", "rocket", "cell", "clock", "page", "text")
TEST_GRAY = ("camera", "coins")
TRAIN_RGB = ("chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina")
TEST_RGB = ("astronaut",)


def load_image(name: str, color: bool) -> np.ndarray:
    """``skimage.data.<name>()`` as float64 in ``[0, 1]``, shape ``(C, H, W)``, ``C = 3`` if ``color``
    else 1 (colour images to grey by ITU-R 601 luma, as JPEG does)."""
    import skimage.data
    img = np.asarray(getattr(skimage.data, name)(), dtype=np.float64) / 255.0
    if img.ndim == 2:
        if color:
            raise ValueError(f"skimage.data.{name} is a grey image: it has no colour to learn")
        return img[None]
    img = img[..., :3]
    if not color:
        return (img @ np.array([0.299, 0.587, 0.114]))[None]
    return img.transpose(2, 0, 1)


def cut_patches(img: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """All ``size x size`` windows of a ``(C, H, W)`` image whose corners lie on a ``stride`` grid:
    ``(N, C, size, size)``."""
    w = img.unfold(1, size, stride).unfold(2, size, stride)            # (C, nh, nw, size, size)
    return w.permute(1, 2, 0, 3, 4).reshape(-1, img.shape[0], size, size).contiguous()


def image_patches(names: Iterable[str], size: int, color: bool, stride: int | None = None,
                  transform: Callable[[np.ndarray], np.ndarray] | None = None) -> torch.Tensor:
    """Patches of the named images in ``[-1, 1]``, float32, ``(N, C, size, size)``.

    ``transform`` (e.g. :func:`jpeg_compress`) acts on each whole ``(C, H, W)`` image in
    ``[0, 1]`` before cutting, so a JPEG's 8 x 8 block grid is the image's, as in real use.
    ``stride`` defaults to ``size`` (non-overlapping)."""
    out = []
    for name in names:
        img = load_image(name, color)
        if transform is not None:
            img = transform(img)
        out.append(cut_patches(torch.from_numpy(2.0 * img - 1.0).float(), size, stride or size))
    return torch.cat(out)


def jpeg_compress(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode and decode a ``(C, H, W)`` image in ``[0, 1]`` as a baseline JPEG with Pillow
    (``quality`` 1..95; grey images in mode ``L``, colour in ``RGB`` with 4:2:0 chroma)."""
    import io

    from PIL import Image
    u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    pil = Image.fromarray(u8[0]) if u8.shape[0] == 1 else Image.fromarray(u8.transpose(1, 2, 0))
    buf = io.BytesIO()
    pil.save(buf, format="JPEG", quality=int(quality))
    dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float64) / 255.0
    return dec[None] if dec.ndim == 2 else dec.transpose(2, 0, 1)


def random_crops(tensors: Sequence[torch.Tensor], size: int, gen: torch.Generator, flip: bool = True
                 ) -> list[torch.Tensor]:
    """The same random ``size x size`` crop (one per sample) of each ``(B, C, H, W)`` tensor, and
    with probability 1/2 per sample the same left-right flip: training augmentation that keeps
    pairs (clean, corrupted) aligned."""
    B, _, H, W = tensors[0].shape
    oy = torch.randint(H - size + 1, (B, 1), generator=gen)
    ox = torch.randint(W - size + 1, (B, 1), generator=gen)
    ar = torch.arange(size)
    rows, cols = (oy + ar)[:, :, None], (ox + ar)[:, None, :]
    flips = (torch.rand(B, generator=gen) < 0.5) if flip else torch.zeros(B, dtype=torch.bool)
    cols = torch.where(flips[:, None, None], (ox + size - 1 - ar)[:, None, :], cols)
    b = torch.arange(B)[:, None, None]
    return [v[b, :, rows.to(v.device), cols.to(v.device)].permute(0, 3, 1, 2).contiguous() for v in tensors]


# ----------------------------------------------------------------------------------------------
# the network

class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(8, c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(min(8, c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x, e):
        h = self.conv1(nn.functional.silu(self.norm1(x))) + self.emb(e)[:, :, None, None]
        return self.skip(x) + self.conv2(nn.functional.silu(self.norm2(h)))


class ScoreUNet(nn.Module):
    """A small U-Net ``net(x, t, y=None) -> (B, out_channels, H, W)`` for ``H, W`` divisible by 4.

    Input: ``x`` (``in_channels``), concatenated with ``y`` when ``cond_channels > 0`` (DriftRec's
    conditional model); ``t`` of shape ``(B,)`` enters as a sinusoidal embedding of ``1000 t``
    (``time=False``: no time input, a plain regression net).  Resolutions ``H``, ``H/2``, ``H/4``
    with ``width``, ``2 width``, ``2 width`` channels, one residual block each way and a skip
    connection per resolution.  The config (constructor arguments) is kept for checkpoints."""

    def __init__(self, in_channels: int = 1, out_channels: int | None = None, cond_channels: int = 0,
                 width: int = 32, time: bool = True):
        super().__init__()
        self.config = {"in_channels": in_channels, "out_channels": out_channels or in_channels,
                       "cond_channels": cond_channels, "width": width, "time": time}
        w, emb = width, 4 * width
        self.time = time
        self.embed = nn.Sequential(nn.Linear(w, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.inp = nn.Conv2d(in_channels + cond_channels, w, 3, padding=1)
        self.down = nn.ModuleList([_ResBlock(w, w, emb), _ResBlock(w, 2 * w, emb), _ResBlock(2 * w, 2 * w, emb)])
        self.mid = _ResBlock(2 * w, 2 * w, emb)
        self.up = nn.ModuleList([_ResBlock(4 * w, 2 * w, emb), _ResBlock(4 * w, w, emb), _ResBlock(2 * w, w, emb)])
        self.out = nn.Sequential(nn.GroupNorm(8 if w % 8 == 0 else 1, w), nn.SiLU(),
                                 nn.Conv2d(w, self.config["out_channels"], 3, padding=1))

    def _embedding(self, t: torch.Tensor | None, B: int, like: torch.Tensor) -> torch.Tensor:
        half = self.embed[0].in_features // 2
        if not self.time:
            t = torch.zeros(B, dtype=like.dtype, device=like.device)
        elif t is None:
            raise ValueError("this net takes the time t: call net(x, t) with t of shape (batch,)")
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=like.dtype, device=like.device) / half)
        arg = 1000.0 * t.to(like.dtype).reshape(-1, 1) * freqs
        return self.embed(torch.cat([arg.sin(), arg.cos()], dim=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        if (y is not None) != (self.config["cond_channels"] > 0):
            raise ValueError("pass y exactly when the net was built with cond_channels > 0")
        e = self._embedding(t, x.shape[0], x)
        h = self.inp(x if y is None else torch.cat([x, y], dim=1))
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, e)
            skips.append(h)
            if i < 2:
                h = nn.functional.avg_pool2d(h, 2)
        h = self.mid(h, e)
        for i, block in enumerate(self.up):
            h = block(torch.cat([h, skips.pop()], dim=1), e)
            if i < 2:
                h = nn.functional.interpolate(h, scale_factor=2.0, mode="nearest")
        return self.out(h)


def score_from_noise(sde, net: nn.Module, y: torch.Tensor | None = None) -> Callable:
    """The score ``score(x, t, y) = -net(x, t, y) / std(t)`` of a noise-predicting net.  With ``y``
    bound here it is the ``score_fn(x, t)`` the samplers take; unbound, a conditional net's
    ``score_fn(x, t, y)`` for :func:`sdekit.losses.denoising_score_matching`."""
    def score_fn(x, t, cond=y):
        std = sde.marginal_std(t).to(x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return -net(x, t, cond) / std
    return score_fn


# ----------------------------------------------------------------------------------------------
# training

def train(net: nn.Module, loss_fn: Callable[[nn.Module, torch.Tensor], torch.Tensor], data: torch.Tensor,
          steps: int, batch: int = 64, lr: float = 2e-3, ema: float = 0.999, seed: int = 0,
          progress: bool = True, desc: str = "train") -> tuple[nn.Module, list[float]]:
    """Adam on ``loss_fn(net, index_batch)`` over random minibatches of row indices of ``data``
    (``data`` only fixes the row count and device), with linear warm-up over the first 5% of
    steps, cosine decay to 0 and gradient clipping at norm 1.  Returns an exponential moving
    average of the weights (``ema`` per step; the usual choice for sampling diffusion models) and
    the per-step losses."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net.train()
    avg = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: min(1.0, (k + 1) / warm) * 0.5 * (1.0 + math.cos(math.pi * min(k, steps) / steps)))
    losses = []
    bar = tqdm(range(steps), desc=desc, disable=not progress)
    for k in bar:
        idx = torch.randint(len(data), (batch,), generator=gen)
        loss = loss_fn(net, idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        decay = min(ema, (1.0 + k) / (10.0 + k))
        with torch.no_grad():
            for pa, pn in zip(avg.parameters(), net.parameters(), strict=True):
                pa.lerp_(pn, 1.0 - decay)
            for ba, bn in zip(avg.buffers(), net.buffers(), strict=True):
                ba.copy_(bn)
        losses.append(loss.item())
        if k % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    net.eval()
    return avg, losses


def save_checkpoint(path: str, net: ScoreUNet, meta: dict) -> None:
    """Weights (float32), the net's config and ``meta`` (what it was trained on and how; JSON
    types only, so that :func:`load_checkpoint` can read it with ``torch.load(weights_only=True)``:
    a ``str`` subclass such as ``torch.__version__`` is stored as a plain ``str``)."""
    import json
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    state = {k: v.detach().to("cpu", torch.float32) for k, v in net.state_dict().items()}
    torch.save({"config": net.config, "state": state, "meta": json.loads(json.dumps(meta))}, path)


def load_checkpoint(path: str, device="cpu") -> tuple[ScoreUNet, dict]:
    """The net saved by :func:`save_checkpoint` (eval mode, no grad) and its ``meta``."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    net = ScoreUNet(**ckpt["config"])
    net.load_state_dict(ckpt["state"])
    return net.to(device).eval().requires_grad_(False), ckpt["meta"]


def train_rgb_net(args, loss: Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor], *, patch: int,
                  stride: int, crop: int, config: dict, path: str, desc: str,
                  final_window: int = 50) -> tuple[ScoreUNet, dict]:
    """Train ``ScoreUNet(3, args.width)`` on ``args.device`` (``args.train_steps`` steps of
    ``args.batch``) on random flipped ``crop`` x ``crop`` crops of the ``patch`` x ``patch`` (``stride``)
    patches of :data:`TRAIN_RGB`, minimising ``loss(model, x0, noise)``; save it to ``path``.

    Seeds: :func:`train` draws the rows with ``args.seed``, the crops are drawn on the CPU with
    ``args.seed + 1`` and ``noise`` (the loss's t and noise) lives on the device with ``args.seed + 2``.
    Returns the EMA net and its ``meta``: ``config``, the run's size, time and place, the mean loss
    of the last ``final_window`` steps and a 50-point loss curve."""
    device = torch.device(args.device)
    data = image_patches(TRAIN_RGB, patch, color=True, stride=stride).to(device)
    crops, noise = torch.Generator().manual_seed(args.seed + 1), torch.Generator(device).manual_seed(args.seed + 2)
    net = ScoreUNet(3, width=args.width).to(device)

    def loss_fn(model, idx):
        x0, = random_crops([data[idx.to(device)]], crop, crops)
        return loss(model, x0, noise)

    with Stopwatch(device) as w:
        avg, losses = train(net, loss_fn, data, args.train_steps, batch=args.batch, seed=args.seed,
                            progress=not args.quiet, desc=desc)
    every = max(1, len(losses) // 50)
    tail = losses[-final_window:]
    meta = {"config": config, "seed": args.seed, "patches": len(data), "seconds": w.seconds,
            "device": str(device), "threads": torch.get_num_threads(), "torch": str(torch.__version__),
            "final_loss": sum(tail) / len(tail),
            "loss_curve": [sum(losses[i:i + every]) / len(losses[i:i + every]) for i in range(0, len(losses), every)]}
    save_checkpoint(path, avg, meta)
    return avg, meta


# ----------------------------------------------------------------------------------------------
# metrics (images in [-1, 1])

def psnr(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB on the ``[0, 1]`` scale (peak 1): ``10 log10(1 / mse)``, ``x`` clipped to ``[-1, 1]``."""
    mse = ((x.clamp(-1, 1) - ref) / 2).double().pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse)


def ssim(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (``skimage.metrics.structural_similarity``: 7 x 7 uniform window, data range 1,
    mean over channels), ``x`` clipped to ``[-1, 1]``."""
    from skimage.metrics import structural_similarity
    a = ((x.clamp(-1, 1) + 1) / 2).double().cpu().numpy()
    b = ((ref + 1) / 2).double().cpu().numpy()
    return torch.tensor([structural_similarity(p, q, data_range=1.0, channel_axis=0)
                         for p, q in zip(a, b, strict=True)])


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced 1-Wasserstein distance between the empirical laws of the rows of ``a`` and ``b``
    (``(N, d)`` each, equal ``N``): the mean over ``projections`` random unit directions ``theta``
    of ``W1(theta . a, theta . b) = mean |sort(theta . a) - sort(theta . b)|``."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"a and b must be (N, d) of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(a.shape[1], projections, generator=gen, dtype=torch.float64)
    theta /= theta.norm(dim=0, keepdim=True)
    pa, pb = (v.double().cpu() @ theta for v in (a, b))
    return float((pa.sort(0).values - pb.sort(0).values).abs().mean())


def patch_swd(x: torch.Tensor, ref: torch.Tensor, size: int = 8, seed: int = 0) -> float:
    """Distribution-level distance of two image sets: :func:`sliced_wasserstein` between all their
    non-overlapping ``size x size`` sub-patches, each with its own mean removed (texture and edges,
    not brightness; the descriptor of Karras et al.'s SWD, at one scale).  It does not see which
    restoration belongs to which clean image: it asks whether the restored set *looks like* clean
    data (blur and blocking move it away), while PSNR asks whether each image is close to its own
    original."""
    def descriptors(v):
        p = torch.cat([cut_patches(img, size, size) for img in v.clamp(-1, 1)]).flatten(1)
        return p - p.mean(1, keepdim=True)
    return sliced_wasserstein(descriptors(x), descriptors(ref), seed=seed)


# ----------------------------------------------------------------------------------------------
# figures and timing

def save_grid(path: str, columns: Sequence[tuple[str, torch.Tensor]], rows: int = 6, title: str = "") -> str | None:
    """A grid with one column per ``(title, images (N, C, H, W) in [-1, 1])``, ``rows`` images each;
    ``None`` (and a message) without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    rows = min(rows, *(len(v) for _, v in columns))
    fig, axes = plt.subplots(rows, len(columns), figsize=(1.6 * len(columns), 1.6 * rows + 0.4), squeeze=False)
    for j, (name, imgs) in enumerate(columns):
        for i in range(rows):
            img = ((imgs[i].detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
            ax = axes[i, j]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, os.path.dirname(path), os.path.basename(path), dpi=110)


class Stopwatch:
    """``with Stopwatch(device) as w: ...; w.seconds``; synchronises CUDA around the block."""

    def __init__(self, device="cpu"):
        self.cuda = torch.device(device).type == "cuda"

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start
