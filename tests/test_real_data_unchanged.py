"""Complex-data support left real-data results bit for bit as they were.

The fingerprints below were written by this file's ``fingerprints()`` run on main at commits
59f4103, 5e037a4 and bf36b3a (the same at all; before complex data went through the samplers, the
marginals and the loss): the SHA-256 of the output bytes of every sampler, the forward
simulation, ``sample_marginal`` and the DSM loss on fixed seeds, float32 and float64, with and
without ``y``.  Bitwise equality holds for the same torch build on the same kind of CPU (the
counter-based normals and the compiled marginals go through torch's ``log``/``cos``/``sin``/``exp``;
the samplers run the torch reference backend: the compiled ones agree with it to ulps, not bits);
regenerate with ``python tests/test_real_data_unchanged.py`` on a commit known to be right if that
ever differs.
"""
import hashlib

import pytest
import torch

from sdekit import VPSDE, OUVE, denoising_score_matching
from sdekit.solvers import (AncestralDDPM, EulerMaruyama, ExponentialIntegrator, PredictorCorrector, ProbabilityFlow,
                            ReverseDiffusion)

MAIN = {
    "em/vp/float32": "ef770b08f98ee01d9f99",
    "em/ouve/float32/nodenoise": "bbf42123840e12b2ca72",
    "rd/vp/float32": "237ec687f4790500ef2c",
    "rd/ouve/float32/nodenoise": "19a0924bf667a0619069",
    "exp/vp/float32": "c9dc2690201845041972",
    "exp/ouve/float32/nodenoise": "47696edcc40456a3ac62",
    "pf/vp/float32": "ed4a38a81c95dab3dce5",
    "pf/ouve/float32/nodenoise": "dd3bd2894092b5d3aca6",
    "pf_exp/vp/float32": "2bb88d65cd72552a45bb",
    "pf_exp/ouve/float32/nodenoise": "cddb6d55512361faaf4d",
    "pc/vp/float32": "05650627da4e32d6b16e",
    "pc/ouve/float32/nodenoise": "82311db08c64ce11fc8d",
    "pc_sample_norm/vp/float32": "fef6fea01b65ccb51a31",
    "pc_sample_norm/ouve/float32/nodenoise": "26d2c1500ea0f8d71d75",
    "pc_alpha1/vp/float32": "d12f113238713d8999d9",
    "pc_alpha1/ouve/float32/nodenoise": "8e18d4a25b6bbff61256",
    "ddpm/vp/float32": "6e921c9dfe4cd20edd6c",
    "simulate/ouve/float32": "2e9a675cb6d476150259",
    "sample_marginal/ouve/float32": "905b7958b772aa7011df",
    "dsm/default/float32": "462327823103be5dc7ce",
    "dsm/sum/float32": "73b551c420d96e47f9e1",
    "dsm/likelihood/float32": "50877ea33c24a6e415cd",
    "dsm/importance/float32": "f5360feb1cf01abe0184",
    "em/vp/float64": "c7afe022151d8f218435",
    "em/ouve/float64/nodenoise": "88d03f7e85100c45f2fd",
    "rd/vp/float64": "ac55dc5a829b029373bd",
    "rd/ouve/float64/nodenoise": "c03d2f0fce552d0cfd4c",
    "exp/vp/float64": "c66a606b4154abb6f84a",
    "exp/ouve/float64/nodenoise": "5e12a3f6fbfe6e066b35",
    "pf/vp/float64": "80b8dc3e3f07217cc7c1",
    "pf/ouve/float64/nodenoise": "a9bbabed894d3ec0eaa1",
    "pf_exp/vp/float64": "1359ceeff83d81d279f1",
    "pf_exp/ouve/float64/nodenoise": "55de3ca175614006facc",
    "pc/vp/float64": "4d189f606fea6179c595",
    "pc/ouve/float64/nodenoise": "a467ec11f37129f60c04",
    "pc_sample_norm/vp/float64": "b80d75ac6b269d871bab",
    "pc_sample_norm/ouve/float64/nodenoise": "df97b64cdbec9be25e22",
    "pc_alpha1/vp/float64": "8a9116c5836abfe87884",
    "pc_alpha1/ouve/float64/nodenoise": "1282c0424f982dd3feaa",
    "ddpm/vp/float64": "706f1a2847717769ad56",
    "simulate/ouve/float64": "7988ddac4e74c7cc4a5e",
    "sample_marginal/ouve/float64": "09c4d67481d6691386e9",
    "dsm/default/float64": "3de3e36a36791b9953af",
    "dsm/sum/float64": "8a32a24e089dbc84091d",
    "dsm/likelihood/float64": "a4f8955f4672262a9eaf",
    "dsm/importance/float64": "ae56a9de68c58529909e",
}


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()[:20]


def _ouve_score(y):
    return lambda x, t: -(x - y) / (0.05 + t.view(-1, *([1] * (x.dim() - 1))))


def fingerprints() -> dict[str, str]:
    vp, ouve = VPSDE(), OUVE()
    samplers = {
        "em": lambda sde: EulerMaruyama(sde, 7),
        "rd": lambda sde: ReverseDiffusion(sde, 7),
        "exp": lambda sde: ExponentialIntegrator(sde, 7),
        "pf": lambda sde: ProbabilityFlow(sde, 7),
        "pf_exp": lambda sde: ProbabilityFlow(sde, 7, method="exponential"),
        "pc": lambda sde: PredictorCorrector(sde, 5, corrector_steps=2),
        "pc_sample_norm": lambda sde: PredictorCorrector(sde, 5, predictor="euler_maruyama", norm="sample"),
        "pc_alpha1": lambda sde: PredictorCorrector(sde, 5, alpha=1.0),
    }
    out = {}
    for dtype in (torch.float32, torch.float64):
        d = str(dtype).split(".")[1]
        g = torch.Generator().manual_seed(0)
        y = torch.randn(3, 2, 5, generator=g, dtype=dtype)
        x0 = torch.randn(3, 2, 5, generator=g, dtype=dtype)
        for name, make in samplers.items():
            out[f"{name}/vp/{d}"] = _digest(make(vp).sample(lambda x, t: -x, shape=(3, 2, 5), seed=123, dtype=dtype,
                                                         backend="torch"))
            out[f"{name}/ouve/{d}/nodenoise"] = _digest(
                make(ouve).sample(_ouve_score(y), y=y, seed=123, denoise=False, backend="torch"))
        out[f"ddpm/vp/{d}"] = _digest(AncestralDDPM(vp, 7).sample(lambda x, t: -x, x_T=x0, seed=9, backend="torch"))
        out[f"simulate/ouve/{d}"] = _digest(EulerMaruyama(ouve, 6).simulate(x0, y, 0.0, None, 5, "torch"))
        t = torch.tensor([0.1, 0.5, 0.9], dtype=dtype)
        out[f"sample_marginal/ouve/{d}"] = _digest(
            torch.cat([v.flatten() for v in ouve.sample_marginal(x0, y, t, torch.Generator().manual_seed(4))]))
        for kind, kw in (("default", {}), ("sum", {"reduce_mean": False}),
                         ("likelihood", {"likelihood_weighting": True}),
                         ("importance", {"likelihood_weighting": True, "importance_sampling": True})):
            loss = denoising_score_matching(ouve, lambda x, t, y: -(x - y), x0, y,
                                            generator=torch.Generator().manual_seed(5), reduction="none", **kw)
            out[f"dsm/{kind}/{d}"] = _digest(loss)
    return out


@pytest.mark.skipif(not MAIN, reason="no fingerprints recorded")
def test_real_data_results_are_bitwise_those_of_main():
    got = fingerprints()
    changed = sorted(k for k in MAIN if got.get(k) != MAIN[k])
    assert not changed, f"real-data results changed bits: {changed}"
    assert set(got) == set(MAIN)


if __name__ == "__main__":
    for k, v in fingerprints().items():
        print(f'    "{k}": "{v}",')
