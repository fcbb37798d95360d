"""Write the three teaching notebooks in notebooks/ from the cell sources below (nbformat).

The notebooks are the deliverable; this script is only their source of truth, so that a change
to one shared element (setup cell, parameters sentence) reaches all three. After running it,
regenerate the lean reference outputs with `make notebooks` (fast mode, text outputs only).

    python scripts/build_notebooks.py            # writes notebooks/0*.ipynb (outputs empty)
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

METADATA = {
    "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
    "language_info": {"name": "python"},
}

SETUP_TEMPLATE = '''\
%matplotlib inline
import matplotlib.pyplot as plt
import torch

import nst_utils as nst  # submodules such as nst.plotting and nst.widgets load on first use

torch.manual_seed(0)  # every random draw below is seeded; this covers torchvision's own init
DEVICE = nst.resolve_device("auto")  # a CUDA GPU when there is one, else the CPU
print(f"nst_utils {nst.__version__} · torch {torch.__version__} · device {DEVICE.type} · fast mode {nst.fast_mode()}")'''

SETUP = SETUP_03 = SETUP_TEMPLATE

PARAMS_NOTE = (
    "**Parameters.** On a CPU keep the image at 128–256 px (the defaults below are sized for a laptop); "
    "on a GPU use the paper's 512 px and a few hundred steps. `nst.run_settings` returns the values unchanged, "
    "except under the environment variable `NST_FAST=1`, where it shrinks everything to 64 px and 8 steps so "
    "that the tests run the whole notebook in seconds (the printed reference numbers come from that mode)."
)


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags: tuple[str, ...] = ()):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# ------------------------------------------------------------------------------------------------
# 01 content reconstruction
# ------------------------------------------------------------------------------------------------

NB01 = [
    md(r"""
# 1 · Content reconstruction: what a CNN layer "sees"

*Start from white noise and change the pixels until one VGG-19 layer responds as it does to a photograph (Gatys, Ecker & Bethge, CVPR 2016, Fig. 1, content row).*
"""),
    md(r"""
## What you will learn

- how the paper names VGG-19's layers (`conv4_2`, `relu4_2`, `pool3`) and how those names map onto torchvision's module indices, found by walking the network;
- why a `conv` tap is not the same thing as its ReLU, and how an in-place ReLU silently overwrites it;
- the paper's *normalised* network, and why its `conv4_2` is our `relu4_2`;
- the content loss, the paper's $\tfrac12\sum_{ij}(F^l_{ij}-P^l_{ij})^2$ and the size-independent form `nst_utils` uses, derived by hand and checked against the package;
- how much of the photograph each layer keeps (reconstructions from `relu1_2` … `relu5_2`, measured by PSNR);
- L-BFGS driven by a closure, the box constraint $[0,1]$, and how Adam compares.
"""),
    code(SETUP),
    md(PARAMS_NOTE + r"""

The five reconstructions below take about 8 minutes at the defaults (128 px, 100 steps) on a busy 2-core CPU, and around 2 minutes on a quiet laptop."""),
    code('''\
SIZE, STEPS = nst.run_settings(size=128, steps=100)  # longest image side in px, L-BFGS steps per run
CONTENT = "hopper"  # a path to your own photo works too
print(f"SIZE={SIZE}, STEPS={STEPS}")'''),
    md(r"""
## 1. The layers of VGG-19, by the paper's names

VGG-19's convolutional part is five blocks of 3×3 convolutions, each convolution followed by a ReLU, each block closed by a 2×2 pooling. The paper names a layer after its block and its position in the block: `conv3_2` is the second convolution of block 3, `relu3_2` its rectification, `pool3` the pooling that ends block 3. torchvision only numbers its modules (`features[12]`). Rather than writing a table by hand, we walk torchvision's own network and name each module as we meet it; `nst_utils` builds its table the same way, and we check that both agree.
"""),
    code('''\
import torchvision

from nst_utils.layers import names_from_modules

vgg_features = torchvision.models.vgg19(weights=None).features  # architecture only: nothing is downloaded
walked = names_from_modules(vgg_features)
assert walked == nst.LAYERS, "torchvision's VGG-19 and nst_utils' layer table disagree"'''),
    md(r"""
The official PyTorch style-transfer tutorial counts convolutions instead (`conv_1`, `conv_2`, …) and puts its content loss on `conv_4`. Counting along the walked names shows which layer that is: `conv2_2`, a low layer, where the paper uses `conv4_2`.
"""),
    code('''\
# NBVAL_CHECK_OUTPUT
for block in range(1, 6):
    row = [f"{nst.LAYER_INDEX[name]:2d} {name}" for name in walked if name[4] == str(block)]
    print(f"block {block}: " + " | ".join(row))
convs = [name for name in walked if name.startswith("conv")]
print(f"the tutorial's conv_4 is {convs[3]} (features[{nst.LAYER_INDEX[convs[3]]}])")
print("channels N_l per block:", [nst.LAYER_CHANNELS[f"conv{b}_1"] for b in range(1, 6)])'''),
    md(r"""
## 2. A `conv` tap is not its ReLU

torchvision builds its ReLUs with `inplace=True`: the ReLU writes its result into the very tensor the convolution returned. A forward hook that keeps a *reference* to the convolution's output therefore ends up holding the rectified values, with no error and no warning. Below, a hook on `features[0]` (`conv1_1`) keeps a reference, another keeps a copy; after the forward pass through `conv1_1` and `relu1_1` only the copy still has negative values.
"""),
    code('''\
def tap_conv_output(features, image):
    """Run conv1_1 + relu1_1 of ``features``; return (kept reference, kept copy) of conv1_1's output."""
    kept = {}

    def hook(module, inputs, output):
        kept["reference"], kept["copy"] = output, output.clone()

    handle = features[0].register_forward_hook(hook)
    with torch.no_grad():
        features[:2](image)  # conv1_1, then relu1_1 (in place)
    handle.remove()
    return kept["reference"], kept["copy"]


content = nst.load_image(CONTENT, SIZE).to(DEVICE)
reference, copy = tap_conv_output(vgg_features.to(DEVICE), content)'''),
    code('''\
# NBVAL_CHECK_OUTPUT
print("relu1_1 in place:", vgg_features[1].inplace)
print("kept reference has negatives:", bool((reference < 0).any()))
print("kept copy has negatives:     ", bool((copy < 0).any()))'''),
    md(r"""
`nst.VGG19Features` replaces every ReLU by an out-of-place one, so its `conv1_1` tap really is the convolution's output (about half of the values are negative) and its `relu1_1` tap is the rectified one.

### The paper's normalised network, and why we tap `relu4_2`

Gatys et al. use "a normalised version" of VGG-19: each filter is rescaled so that its mean activation over natural images and positions is one (the next layer's weights are divided by the same factor, so the network computes the same function). Without it the layers differ by orders of magnitude and the paper's α/β values would mean nothing. `nst_utils` rescales the weights the same way when it builds the network (`fold_filter_scales` in `nst_utils/features.py`; the scales come from `nst_utils/normalisation.py`); the cell below measures the mean rectified activation per layer on our photograph with and without them.

One more detail decides which tensor is "`conv4_2`". The paper's Caffe code computed ReLU in place, exactly like torchvision: its blob named `conv4_2` held the *rectified* response. So the paper's `conv4_2` is our `relu4_2`, and the defaults of `nst_utils` tap `relu4_2` for content and `relu1_1` … `relu5_1` for style. (Pre-ReLU taps are available, but on the normalised network they make the `conv1_1` style term 10³–10⁴ times larger than the others.)
"""),
    code('''\
extractor = nst.make_extractor(nst.FIG1_CONTENT_LAYERS, device=DEVICE)  # normalised Caffe VGG-19, stops at relu5_2
raw = nst.VGG19Features("caffe", "avg", last_layer="relu5_1", normalise=False).to(DEVICE)
taps = ["conv1_1", "relu1_1"]
ours = extractor(content, taps)
means = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
normalised_means = {name: float(f.mean()) for name, f in extractor(content, means).items()}
raw_means = {name: float(f.mean()) for name, f in raw(content, means).items()}'''),
    code('''\
# NBVAL_CHECK_OUTPUT
print("our conv1_1 tap has negatives:", bool((ours["conv1_1"] < 0).any()))
print("our relu1_1 tap has negatives:", bool((ours["relu1_1"] < 0).any()))
print("mean activation   raw Caffe   normalised")
for name in means:
    print(f"{name:>15}   {raw_means[name]:9.3g}   {normalised_means[name]:.3g}")'''),
    md(r"""
## 3. The content loss

Let $\vec p$ be the photograph and $\vec x$ the image being generated. At layer $l$ with $N_l$ filters, each feature map has $M_l$ = height × width positions; stack them as rows of matrices $P^l, F^l \in \mathbb{R}^{N_l\times M_l}$ (the photograph's and the generated image's responses). The paper's content loss (eq. 1) is the squared error between them:

$$\mathcal{L}_\text{content}(\vec p,\vec x,l) = \frac12\sum_{i,j}\left(F^l_{ij}-P^l_{ij}\right)^2, \qquad \frac{\partial\mathcal{L}_\text{content}}{\partial F^l_{ij}} = F^l_{ij}-P^l_{ij}\ \text{ where } F^l_{ij}>0 .$$

It is a *sum*, not a mean: it grows with the image ($M_l$) while the style loss of notebook 2 does not, so with the paper's formula the same α/β gives 16 times more content at 512 px than at 128 px. `nst_utils` therefore uses the mean over the $N_l M_l$ entries, times a constant $C = 100$ calibrated once so that the paper's α/β values give the paper's pictures (notebook 3; the reasoning is in the docstring of `nst_utils.losses`):

$$\mathcal{L}_\text{content} = \frac{C}{2N_lM_l}\sum_{i,j}\left(F^l_{ij}-P^l_{ij}\right)^2 = \frac{C}{N_lM_l}\,\mathcal{L}^\text{paper}_\text{content}.$$

We write both out once by hand on a white-noise image and check them against `nst.content_loss_paper` and `nst.content_loss`; from then on the package computes it. (White noise here is the paper's: independent Gaussian pixels, small around mid-grey, from a seeded generator.)
"""),
    code('''\
layer = "relu4_2"
noise = nst.initial_image("noise", content=content, seed=0)
F_l = extractor(noise, [layer])[layer][0]  # (N_l, H_l, W_l)
P_l = extractor(content, [layer])[layer][0]
N_l, M_l = F_l.shape[0], F_l.shape[1] * F_l.shape[2]
F, P = F_l.reshape(N_l, M_l), P_l.reshape(N_l, M_l)
paper = 0.5 * ((F - P) ** 2).sum()  # eq. 1
by_hand = nst.losses.CONTENT_CALIBRATION / (N_l * M_l) * paper  # what nst_utils optimises
torch.testing.assert_close(paper, nst.losses.content_loss_paper(F_l, P_l))
torch.testing.assert_close(by_hand, nst.content_loss(F_l, P_l))'''),
    code('''\
# NBVAL_CHECK_OUTPUT
print(f"F and P at {layer}: N_l x M_l = {tuple(F.shape)}")
print(f"content loss of white noise at {layer}: paper {paper.item():.3g}, nst_utils {by_hand.item():.3g}")'''),
    md(r"""
## 4. Reconstructing the photograph from each layer (Fig. 1, content row)

Gradient descent on the pixels of a white-noise image $\vec x$ minimises $\mathcal{L}_\text{content}(\vec p,\vec x,l)$ for one layer $l$ at a time. The paper shows `conv1_2`, `conv2_2`, `conv3_2`, `conv4_2` and `conv5_2`; by the Caffe convention above those are our `relu1_2` … `relu5_2`. `nst.reconstruct_content` builds $P^l$ once, then optimises.

Timing: this cell runs 5 × `STEPS` L-BFGS iterations; the deeper the layer, the more of the network each evaluation crosses.
"""),
    code('''\
reconstructions = {
    layer: nst.reconstruct_content(content, layer, extractor=extractor, steps=STEPS, seed=0)
    for layer in nst.FIG1_CONTENT_LAYERS
}
titles = [f"{layer.replace('relu', 'conv')} ({layer})" for layer in reconstructions]
nst.plotting.show_images([content, *(r.image for r in reconstructions.values())], ["photograph", *titles], width=2.2);'''),
    md(r"""
Lower layers reproduce the pixels almost exactly; higher layers keep the objects and their arrangement (face, cap, collar) but let the exact colours and fine detail go. We measure it with the peak signal-to-noise ratio against the original, $\text{PSNR} = 10\log_{10}(1/\text{MSE})$ for images in $[0, 1]$ (higher is closer).
"""),
    code('''\
def psnr(image, reference):
    """Peak signal-to-noise ratio in dB of two [0, 1] images."""
    mse = torch.mean((image.clamp(0, 1) - reference) ** 2)
    return float(10 * torch.log10(1 / mse))


psnrs = {layer: psnr(r.image, content) for layer, r in reconstructions.items()}'''),
    code('''\
# NBVAL_CHECK_OUTPUT
for layer, r in reconstructions.items():
    print(f"{layer}: steps {r.steps}, content loss after step 1 {r.losses()[0]:.3g}, best {r.best_total:.3g}, PSNR {psnrs[layer]:.3g} dB")'''),
    code('''\
fig, ax = plt.subplots(figsize=(5, 3), layout="constrained")
ax.plot(list(psnrs), list(psnrs.values()), marker="o")
ax.set_xlabel("content layer")
ax.set_ylabel("PSNR vs photograph (dB)")
ax.set_title("detail kept by each layer");'''),
    md(r"""
## 5. The optimiser: L-BFGS driven by a closure

The paper: "Here we use L-BFGS, which we found to work best for image synthesis." L-BFGS builds a picture of the loss surface's curvature from the last few gradients and picks each step's length with a line search, so it needs to evaluate the loss and its gradient *at points of its own choosing*, several times per iteration. It therefore asks us for a **closure**: a function that takes a candidate image and returns loss and gradient. A closure in Python is a function that remembers variables of the scope it was created in; below, `make_closure` receives the extractor, the layer, the target $P^l$ and the image shape as arguments, and the inner function it returns "closes over" them.

We use **L-BFGS-B** (SciPy), the variant with box constraints: every pixel stays in $[0, 1]$ inside the optimiser's own step computation. The common alternative, clamping the image after each `torch.optim.LBFGS` step, moves the iterate without telling the optimiser, which invalidates the curvature pairs it stored. `nst.optimize` wraps exactly this call; here we make it by hand for a few iterations and check that both arrive at the same loss.
"""),
    code('''\
from scipy.optimize import Bounds, minimize


def make_closure(extractor, layer, target, shape):
    """Return f(z) -> (loss, gradient): z is the image flattened into a float64 vector."""

    def closure(z):
        x = torch.from_numpy(z).view(shape).to(target.device, torch.float32).requires_grad_(True)
        loss = nst.content_loss(extractor(x, [layer])[layer], target)
        (grad,) = torch.autograd.grad(loss, x)
        return float(loss.detach()), grad.double().cpu().numpy().ravel()

    return closure


demo_layer, demo_steps = "relu2_2", min(STEPS, 10)
target = extractor(content, [demo_layer])[demo_layer]
start = nst.initial_image("noise", content=content, seed=0)
closure = make_closure(extractor, demo_layer, target, tuple(start.shape))
lbfgs_by_hand = minimize(
    closure, start.double().cpu().numpy().ravel(), jac=True, method="L-BFGS-B", bounds=Bounds(0.0, 1.0),
    options={"maxiter": demo_steps, "maxfun": 20 * demo_steps, "maxcor": 20, "ftol": 0.0, "gtol": 0.0},
)
packaged = nst.reconstruct_content(content, demo_layer, extractor=extractor, steps=demo_steps, seed=0)
torch.testing.assert_close(
    torch.tensor(lbfgs_by_hand.fun, dtype=torch.float64), torch.tensor(packaged.best_total, dtype=torch.float64),
    rtol=1e-4, atol=0.0,
)'''),
    code('''\
# NBVAL_CHECK_OUTPUT
print(f"{demo_steps} L-BFGS-B iterations at {demo_layer}: by hand {lbfgs_by_hand.fun:.3g}, nst.optimize {packaged.best_total:.3g}")
print(f"closure evaluations by hand: {lbfgs_by_hand.nfev}, in nst.optimize: {packaged.evaluations}")
print("pixels inside [0, 1]:", bool(lbfgs_by_hand.x.min() >= 0 and lbfgs_by_hand.x.max() <= 1))'''),
    md(r"""
### Adam for comparison

Adam, the usual choice for training networks, needs only the gradient and takes one evaluation per step, but its step size is a learning rate we must choose (here 0.02 in pixel units, the `nst_utils` default), and it has no curvature model. We run it on `relu3_2` for the same number of steps and plot both loss curves against steps and against wall-clock seconds (an L-BFGS step costs 1–1.3 evaluations on average, so the two x-axes tell a similar story).
"""),
    code('''\
compare_layer = "relu3_2"
adam = nst.reconstruct_content(content, compare_layer, extractor=extractor, steps=STEPS, optimizer="adam", seed=0)
runs = {"L-BFGS-B": reconstructions[compare_layer], "Adam (lr 0.02)": adam}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
nst.plotting.plot_losses(runs, x="step", ax=axes[0])
nst.plotting.plot_losses(runs, x="seconds", ax=axes[1])
fig.suptitle(f"content reconstruction from {compare_layer}");'''),
    code('''\
# NBVAL_CHECK_OUTPUT
for label, r in runs.items():
    print(f"{label}: {r.steps} steps, {r.evaluations} evaluations, final loss {r.best_total:.3g}")
print("L-BFGS-B ends lower:", runs["L-BFGS-B"].best_total < adam.best_total)'''),
    md(r"""
## Summary

- Layer names are derived by walking the network: the paper's `conv4_2` is `features[21]`, the tutorial's `conv_4` is `conv2_2`.
- An in-place ReLU overwrites the tensor a `conv` hook kept. The paper's Caffe blobs were rectified the same way, so its `conv4_2` is our `relu4_2`; the network is normalised so every filter's mean activation is one.
- The paper's content loss is $\tfrac12\sum(F^l-P^l)^2$, a sum over $N_l \times M_l$ entries; `nst_utils` uses its mean times $C=100$, so that α/β does not depend on the image size.
- Reconstructions from low layers are near-copies of the photograph; from high layers they keep the content and its arrangement but not the exact pixels (PSNR falls with depth). That is why the paper matches content on a high layer: it leaves the pixels free for the style.
- L-BFGS-B drives the optimisation through a closure and keeps the pixels in $[0,1]$ by construction; it gets lower than Adam in the same number of steps.

## Exercises

1. Reconstruct from `conv4_2` (the pre-ReLU tap) and from `pool4`. How do they differ from `relu4_2`?
2. Set `pooling="max"` in `nst.make_extractor` and redo the `relu5_2` reconstruction. The paper found average pooling "slightly more appealing"; do you?
3. Use your own photograph (`CONTENT = "path/to/photo.jpg"`) and watch which parts survive in `relu5_2`.
4. Double `STEPS`. Which reconstructions change, and does the PSNR ordering hold?
5. Try Adam with `adam_lr=0.05` and `0.005` (pass it to `nst.reconstruct_content`). What goes wrong at each end?
"""),
]

# ------------------------------------------------------------------------------------------------
# 02 style reconstruction
# ------------------------------------------------------------------------------------------------

NB02 = [
    md(r"""
# 2 · Style reconstruction: textures from Gram matrices

*Throw away where things are, keep which features occur together: the Gram matrices of a painting's feature maps are a texture model (Gatys et al., CVPR 2016, Fig. 1, style row).*
"""),
    md(r"""
## What you will learn

- the Gram matrix $G^l = F^l F^{l\top}$, derived by hand and checked against `nst.gram_matrix`;
- the per-layer style loss $E_l = \frac{1}{4N_l^2M_l^2}\sum_{ij}(G^l_{ij}-A^l_{ij})^2$ and the style loss $\mathcal{L}_\text{style} = \sum_l w_l E_l$;
- texture synthesis from white noise with growing sets of layers, and how the scale of the matched structure grows with them;
- what the layer weights $w_l$ do.
"""),
    code(SETUP),
    md(PARAMS_NOTE + r"""

The seven texture syntheses below take about 10 minutes at the defaults (128 px, 100 steps) on a busy 2-core CPU, and a few minutes on a quiet laptop."""),
    code('''\
SIZE, STEPS = nst.run_settings(size=128, steps=100)  # texture side in px, L-BFGS steps per run
STYLE = "mosaic"  # stained glass: colours, lead lines and cells at three distinct scales
print(f"SIZE={SIZE}, STEPS={STEPS}")'''),
    code('''\
style = nst.load_image(STYLE, SIZE).to(DEVICE)
extractor = nst.make_extractor(nst.PAPER_STYLE_LAYERS, device=DEVICE)  # normalised Caffe VGG-19 up to relu5_1
nst.plotting.show_images([style], [f"style image '{STYLE}'"], width=3);'''),
    md(r"""
## 1. The Gram matrix

At layer $l$ the style image's responses form a matrix $F^l\in\mathbb{R}^{N_l\times M_l}$: one row per filter, one column per position ($M_l$ = height × width). The Gram matrix holds the inner products between the rows, summed over all positions:

$$G^l_{ij} = \sum_k F^l_{ik}F^l_{jk}, \qquad G^l = F^l F^{l\top}\in\mathbb{R}^{N_l\times N_l}.$$

Summing over $k$ throws away *where* each feature occurs and keeps *which features occur together* (and how strongly): a stationary description of the image, i.e. a texture model. We compute it by hand for `relu1_1` and check it against the package, which from here on computes it for us. `nst.gram_matrix` is unnormalised, like the paper's eq. 3; the normalisation sits in the loss.
"""),
    code('''\
feats = extractor(style, ["relu1_1"])["relu1_1"]  # (1, N_l, H_l, W_l)
_, N_l, H_l, W_l = feats.shape
M_l = H_l * W_l
F = feats[0].reshape(N_l, M_l)  # one row per filter, one column per position
G = F @ F.T
torch.testing.assert_close(G, nst.gram_matrix(feats)[0])'''),
    code('''\
# NBVAL_CHECK_OUTPUT
print(f"relu1_1: F is N_l x M_l = {tuple(F.shape)}, G is {tuple(G.shape)}, symmetric: {torch.equal(G, G.T)}")'''),
    code('''\
fig, ax = plt.subplots(figsize=(3.6, 3.2), layout="constrained")
im = ax.imshow(G.cpu(), cmap="viridis")
ax.set_title("Gram matrix $G$ of relu1_1 (64 x 64)")
fig.colorbar(im, ax=ax);'''),
    md(r"""
## 2. The style loss

Let $\vec a$ be the style image and $\vec x$ the generated one, with Gram matrices $A^l$ and $G^l$. The contribution of layer $l$ (eq. 4) and the total style loss (eq. 5) are

$$E_l = \frac{1}{4N_l^2M_l^2}\sum_{i,j}\left(G^l_{ij}-A^l_{ij}\right)^2, \qquad \mathcal{L}_\text{style}(\vec a,\vec x) = \sum_{l} w_l E_l .$$

$G^l$ is a sum over $M_l$ positions of products of $N_l$-vectors, so the factor $1/(4N_l^2M_l^2)$ makes $E_l$ comparable across layers and image sizes. The paper weights the five layers it uses equally, $w_l = 1/5$. By hand for one layer, on a white-noise image, against `nst.style_layer_loss`:
"""),
    code('''\
noise = nst.initial_image("noise", style=style, seed=0)
A = nst.style_targets(extractor, style, nst.PAPER_STYLE_LAYERS)  # {layer: A^l}, computed once
noise_feats = extractor(noise, nst.PAPER_STYLE_LAYERS)
Fx = noise_feats["relu1_1"][0].reshape(N_l, M_l)
Gx = Fx @ Fx.T
E_by_hand = ((Gx - A["relu1_1"][0]) ** 2).sum() / (4 * N_l**2 * M_l**2)
torch.testing.assert_close(E_by_hand, nst.style_layer_loss(noise_feats["relu1_1"], A["relu1_1"]))'''),
    code('''\
# NBVAL_CHECK_OUTPUT
print("layer    N_l   M_l   E_l of white noise")
for name in nst.PAPER_STYLE_LAYERS:
    f = noise_feats[name]
    print(f"{name}  {f.shape[1]:4d}  {f.shape[2] * f.shape[3]:4d}   {nst.style_layer_loss(f, A[name]).item():.3g}")
equal = {name: 1 / 5 for name in nst.PAPER_STYLE_LAYERS}
print(f"L_style with w_l = 1/5: {nst.style_loss(noise_feats, A, equal).item():.3g}")'''),
    md(r"""
## 3. Texture synthesis with growing layer sets (Fig. 1, style row)

Starting from white noise, we minimise $\mathcal{L}_\text{style}$ on `relu1_1`; then on `relu1_1` and `relu2_1`; and so on up to all five layers (the paper's `conv1_1` … `conv5_1`, rectified). Each higher layer sees a larger patch of the image (its receptive field grows with every pooling), so each added layer constrains structure on a larger scale, while the global arrangement of the painting is never reproduced.

Timing: 5 × `STEPS` L-BFGS iterations, the later sets crossing more of the network.
"""),
    code('''\
textures = [
    nst.synthesize_texture(style, layers, extractor=extractor, steps=STEPS, seed=0)
    for layers in nst.FIG1_STYLE_LAYER_SETS
]
set_titles = ["relu1_1", "+ relu2_1", "+ relu3_1", "+ relu4_1", "+ relu5_1"]
nst.plotting.show_images([style, *(t.image for t in textures)], ["style", *set_titles], width=2.2);'''),
    code('''\
# NBVAL_CHECK_OUTPUT
for layers, t in zip(nst.FIG1_STYLE_LAYER_SETS, textures):
    print(f"{len(layers)} layer(s) up to {layers[-1]}: steps {t.steps}, L_style after step 1 {t.losses()[0]:.3g}, best {t.best_total:.3g}")'''),
    md(r"""
With `relu1_1` alone only the colours and the finest grain match: the result is coloured noise. Adding `relu2_1` and `relu3_1` brings edges and the dark lead lines; with `relu4_1` and `relu5_1` whole glass cells of the right size appear. The arrangement of the window (the rose in its centre) is gone in all of them: the Gram matrix does not record it.

## 4. The layer weights $w_l$

The weights decide which scales the optimiser cares about most. We compare the paper's equal weights with two alternatives over the same five layers:

- $w_l \propto 1/N_l^2$, the weighting of Gatys' own reference notebook (`1e3/n**2`): with 64 filters in `relu1_1` and 512 in `relu5_1`, it puts 64 times more weight on the lowest layer;
- only the two highest layers, `relu4_1` and `relu5_1` ($w_l = 0$ skips a layer).
"""),
    code('''\
def normalised(weights):
    """Scale a {layer: weight} dict so the weights sum to one."""
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()}


weightings = {
    "equal 1/5 (paper)": {name: 1 / 5 for name in nst.PAPER_STYLE_LAYERS},
    "1/N_l^2 (reference code)": normalised({n: 1 / nst.LAYER_CHANNELS[n] ** 2 for n in nst.PAPER_STYLE_LAYERS}),
    "only relu4_1, relu5_1": {n: (0.5 if n in ("relu4_1", "relu5_1") else 0.0) for n in nst.PAPER_STYLE_LAYERS},
}
weighted = {"equal 1/5 (paper)": textures[-1]}  # already computed above
for label, weights in list(weightings.items())[1:]:
    weighted[label] = nst.synthesize_texture(
        style, nst.PAPER_STYLE_LAYERS, extractor=extractor, layer_weights=weights, steps=STEPS, seed=0
    )
nst.plotting.show_images([r.image for r in weighted.values()], list(weighted), width=2.6);'''),
    code('''\
# NBVAL_CHECK_OUTPUT
for label, weights in weightings.items():
    image = weighted[label].image
    per_layer = {n: nst.style_layer_loss(f, A[n]).item() for n, f in extractor(image, nst.PAPER_STYLE_LAYERS).items()}
    print(f"{label:>24}: w = {[f'{w:.3g}' for w in weights.values()]}")
    print(f"{'':>24}  E_l = {[f'{e:.3g}' for e in per_layer.values()]}")'''),
    md(r"""
The per-layer losses $E_l$ of the three results show the trade: the layers with the most weight are matched best. With $1/N_l^2$ the result is dominated by the fine grain and colours; with only the high layers the large cells appear but the pixels in between stay noisy, because nothing constrains the finest scale.

## Summary

- The Gram matrix $G^l = F^lF^{l\top}$ sums feature co-occurrences over all positions: it keeps *what* and drops *where*.
- $E_l = \frac{1}{4N_l^2M_l^2}\sum(G^l-A^l)^2$, $\mathcal{L}_\text{style}=\sum_l w_lE_l$; the paper uses $w_l=1/5$ on `conv1_1` … `conv5_1` (our `relu1_1` … `relu5_1`).
- Adding higher layers matches the texture on a growing scale, up to whole motifs, without the global arrangement.
- The weights $w_l$ choose which scales win.

## Exercises

1. Synthesise a texture twice as large as the style image (`shape=(1, 3, 2 * SIZE, 2 * SIZE)` in `nst.synthesize_texture`). What repeats, and what does not?
2. Replace `"mosaic"` by `"swirls"` and `"composition"`. Which style is best captured by the Gram matrices, and which loses most?
3. Change `seed`: how different are two textures from the same Gram matrices?
4. Use `conv1_1` … `conv5_1` (pre-ReLU taps) as style layers and print the $E_l$ of white noise. Which layer dominates, and why does that support tapping the ReLUs?
5. Synthesise with `pooling="max"`. Do you see the paper's "slightly more appealing" difference?
"""),
]

# ------------------------------------------------------------------------------------------------
# 03 style transfer
# ------------------------------------------------------------------------------------------------

NB03 = [
    md(r"""
# 3 · Style transfer: content and style in one loss

*Match a photograph's features on a high layer and a painting's Gram matrices on many, weighed against each other by α/β (Gatys et al., CVPR 2016, Figs. 3–6).*
"""),
    md(r"""
## What you will learn

- the total loss $\mathcal{L}_\text{total} = \alpha\mathcal{L}_\text{content} + \beta\mathcal{L}_\text{style}$, assembled by hand from the package's losses and checked against `nst.StyleTransferObjective`;
- the trade-off between content and style as α/β and the style layers change (Fig. 4);
- what the content layer does (`relu2_2` vs `relu4_2`, Fig. 5) and what the initialisation does (Fig. 6);
- total-variation regularisation, which the paper does not use;
- L-BFGS vs Adam on the full problem, and an interactive panel to try settings yourself.
"""),
    code(SETUP_03),
    md(PARAMS_NOTE + r"""

`GRID_SIZE` and `GRID_STEPS` are for the 15-image trade-off grid of section 2, kept smaller so that it finishes in reasonable time. At the defaults the grid takes about 10 minutes on a busy 2-core CPU (a few minutes on a quiet laptop), and each 128-px transfer about 2 minutes."""),
    code('''\
SIZE, STEPS = nst.run_settings(size=128, steps=100)  # single transfers: longest side in px, L-BFGS steps
GRID_SIZE, GRID_STEPS = nst.run_settings(size=64, steps=100)  # the 3 x 5 grid of section 2
CONTENT, STYLE = "hopper", "swirls"
print(f"SIZE={SIZE}, STEPS={STEPS}, GRID_SIZE={GRID_SIZE}, GRID_STEPS={GRID_STEPS}")'''),
    code('''\
content = nst.load_image(CONTENT, SIZE).to(DEVICE)
style = nst.load_image(STYLE, tuple(content.shape[-2:])).to(DEVICE)  # the paper resizes the style to the content's size
# One extractor for every run below: it stops at relu5_1 and serves relu2_2 and relu4_2 as content layers too.
extractor = nst.make_extractor([*nst.PAPER_STYLE_LAYERS, "relu2_2", "relu4_2"], device=DEVICE)
base = nst.PAPER.replace(size=SIZE, steps=STEPS, device=DEVICE.type)  # the paper's settings at our size
print(base)
nst.plotting.show_images([content, style], ["content (photograph)", "style (artwork)"], width=2.6);'''),
    md(r"""
## 1. The total loss

With $\vec p$ the photograph, $\vec a$ the artwork and $\vec x$ the generated image, the paper minimises (eq. 7)

$$\mathcal{L}_\text{total}(\vec p,\vec a,\vec x) = \alpha\,\mathcal{L}_\text{content}(\vec p,\vec x) + \beta\,\mathcal{L}_\text{style}(\vec a,\vec x),$$

with $\mathcal{L}_\text{content} = \frac{C}{2N_lM_l}\sum(F^l-P^l)^2$ on one content layer (notebook 1: the paper's sum made size-independent, $C = 100$) and $\mathcal{L}_\text{style} = \sum_l w_lE_l$, $E_l = \frac{1}{4N_l^2M_l^2}\sum(G^l-A^l)^2$ (notebook 2). Only the ratio α/β matters for the result; the paper reports it, and `TransferConfig` stores `ratio` = α/β with β = `style_weight` = 1. Its defaults are the paper's: content on `relu4_2` (the paper's `conv4_2`), style on `relu1_1` … `relu5_1` with $w_l = 1/5$, α/β = 10⁻³. We assemble the loss by hand from the package's loss functions for a white-noise image and check it against the objective that `nst.transfer` optimises.
"""),
    code('''\
x = nst.initial_image("noise", content=content, seed=0)
P = nst.content_targets(extractor, content, base.content_layers)  # {layer: P^l}
A = nst.style_targets(extractor, style, base.style_layers)  # {layer: A^l}
feats = extractor(x, [*base.content_layers, *base.style_layers])
alpha, beta = base.content_weight, base.style_weight
L_content = sum(nst.content_loss(feats[n], P[n]) for n in base.content_layers)
L_style = sum(w * nst.style_layer_loss(feats[n], A[n]) for n, w in base.layer_weights().items())
L_total = alpha * L_content + beta * L_style

objective = nst.StyleTransferObjective(
    extractor, P, A, content_weight=alpha, style_weight=beta, style_layer_weights=base.layer_weights()
)
torch.testing.assert_close(L_total, sum(objective(x).values()))'''),
    code('''\
# NBVAL_CHECK_OUTPUT
print(f"alpha = {alpha:.3g}, beta = {beta:.3g}, alpha/beta = {alpha / beta:.3g}")
print(f"white noise: L_content = {L_content.item():.3g}, L_style = {L_style.item():.3g}")
print(f"alpha L_content = {(alpha * L_content).item():.3g}, beta L_style = {(beta * L_style).item():.3g}, total = {L_total.item():.3g}")'''),
    md(r"""
## 2. The trade-off: α/β and the style layers (Fig. 4)

Rows: style matched on `relu1_1` only; on `relu1_1` … `relu3_1`; on all five layers. Columns: α/β from $10^{-5}$ (style dominates) to $10^{-1}$ (content dominates), the range of the paper's figure and of the panel's slider (`nst.RATIO_RANGE`). Every run starts from the same white noise, as in the paper.

Timing: 15 runs of `GRID_STEPS` steps at `GRID_SIZE` px, the longest cell of the series.
"""),
    code('''\
ratios = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
layer_sets = [nst.FIG1_STYLE_LAYER_SETS[i] for i in (0, 2, 4)]
grid_cfg = base.replace(size=GRID_SIZE, steps=GRID_STEPS)
grid = [
    [nst.transfer(content, style, grid_cfg.replace(style_layers=layers, ratio=r), extractor=extractor) for r in ratios]
    for layers in layer_sets
]
row_labels = ["relu1_1", "relu1_1 … relu3_1", "relu1_1 … relu5_1"]
col_labels = [f"α/β = {r:.0e}" for r in ratios]
nst.plotting.show_grid([[res.image for res in row] for row in grid], row_labels, col_labels, width=1.9);'''),
    code('''\
# NBVAL_CHECK_OUTPUT
print("final L_content (unweighted) per style layer set and alpha/beta")
print(f"{'':>18} " + " ".join(f"{r:>8.0e}" for r in ratios))
for label, row in zip(row_labels, grid):
    values = [res.history[-1].losses["content"] / res.config.content_weight for res in row]
    print(f"{label:>18} " + " ".join(f"{v:>8.3g}" for v in values))'''),
    md(r"""
Read the grid from top-left to bottom-right. At α/β = 10⁻⁵ the style term wins and the image is a texture of the painting; at 10⁻¹ the photograph comes back almost untouched. In between, around 10⁻³ (the paper's Fig. 3 value), the portrait is recognisable and painted in the swirls' strokes. Along the rows, matching the style on `relu1_1` only transfers colour and grain; with all five layers the strokes and their larger-scale structure appear, and the paper found this the most appealing ("matching the style representation up to higher layers"). The printed content losses fall from left to right: the larger α/β, the closer the features of `relu4_2` get to the photograph's.

## 3. Which layer carries the content (Fig. 5)

The content layer decides how much of the photograph's *pixels* the result must keep. On `relu2_2` (the paper's `conv2_2`) the fine detail is enforced and the style can only be "blended over" the photograph; on `relu4_2` only the objects and their arrangement are enforced, and the style is free to repaint them. Both at α/β = 10⁻³.
"""),
    code('''\
by_content_layer = {
    layer: nst.transfer(content, style, base.replace(content_layers=(layer,)), extractor=extractor)
    for layer in ("relu2_2", "relu4_2")
}
nst.plotting.show_images(
    [r.image for r in by_content_layer.values()], [f"content on {layer}" for layer in by_content_layer], width=2.6
);'''),
    code('''\
# NBVAL_CHECK_OUTPUT
for layer, r in by_content_layer.items():
    terms = r.history[-1].losses
    print(f"content on {layer}: steps {r.steps}, alpha L_content {terms['content']:.3g}, beta L_style {terms['style']:.3g}")'''),
    md(r"""
## 4. Initialisation (Fig. 6)

The paper starts from white noise, and reports that starting from the content or the style image "does not seem to have a strong effect" on the result; only noise gives a different image for each seed. Starting from the photograph is what many implementations do, because the content term is satisfied from step one. With few steps on a CPU the start still shows; with the paper's many hundreds of steps the three converge to images of similar quality. The noise result is the `relu4_2` run above.
"""),
    code('''\
by_init = {init: nst.transfer(content, style, base.replace(init=init), extractor=extractor) for init in ("content", "style")}
by_init["noise"] = by_content_layer["relu4_2"]
nst.plotting.show_images([r.image for r in by_init.values()], [f"from {init}" for init in by_init], width=2.6);'''),
    code('''\
# NBVAL_CHECK_OUTPUT
for init, r in by_init.items():
    print(f"init {init:>7}: total loss after step 1 {r.losses()[0]:.3g}, best {r.best_total:.3g}")'''),
    md(r"""
## 5. Total variation

The style loss leaves high-frequency noise, most visibly at low step counts. A common fix, not in the paper (Mahendran & Vedaldi 2015 introduced it as an image prior; Johnson's `neural-style` made it popular), adds a total-variation term that penalises differences between neighbouring pixels:

$$\mathcal{L}_\text{total} = \alpha\mathcal{L}_\text{content} + \beta\mathcal{L}_\text{style} + \lambda_\text{TV}\sum_{c,i,j}\left[(x_{c,i+1,j}-x_{c,i,j})^2 + (x_{c,i,j+1}-x_{c,i,j})^2\right].$$

Its weight is in the same units as the other terms (`nst.tv_loss` is a plain sum over a $[0,1]$ image), so it has to be tuned against them.
"""),
    code('''\
TV_WEIGHT = 0.1
with_tv = nst.transfer(content, style, base.replace(tv_weight=TV_WEIGHT), extractor=extractor)
tv_runs = {"no TV (paper)": by_content_layer["relu4_2"], f"TV weight {TV_WEIGHT:g}": with_tv}
nst.plotting.show_images([r.image for r in tv_runs.values()], list(tv_runs), width=2.6);'''),
    code('''\
# NBVAL_CHECK_OUTPUT
for label, r in tv_runs.items():
    print(f"{label:>14}: TV of the result {nst.tv_loss(r.image).item():.3g}")
print("TV term lowers TV:", nst.tv_loss(with_tv.image).item() < nst.tv_loss(by_content_layer["relu4_2"].image).item())'''),
    md(r"""
## 6. L-BFGS vs Adam

The same problem, the same number of steps, Adam with the package's default learning rate 0.02 (pixel units). L-BFGS-B's line search adapts to the loss scale, whatever α/β is; Adam's learning rate does not know the scale and must be tuned. Compare the curves over the whole run, not just the first few steps: L-BFGS-B's first iterations from noise are spent building its curvature model.
"""),
    code('''\
adam = nst.transfer(content, style, base.replace(optimizer="adam"), extractor=extractor)
opt_runs = {"L-BFGS-B": by_content_layer["relu4_2"], "Adam (lr 0.02)": adam}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained")
nst.plotting.plot_losses(opt_runs, x="step", ax=axes[0])
nst.plotting.plot_losses(opt_runs, x="seconds", ax=axes[1])
fig.suptitle("style transfer, alpha/beta = 1e-3");'''),
    code('''\
# NBVAL_CHECK_OUTPUT
for label, r in opt_runs.items():
    print(f"{label}: {r.steps} steps, {r.evaluations} evaluations, final total {r.best_total:.3g}")
print("L-BFGS-B ends lower:", opt_runs["L-BFGS-B"].best_total < adam.best_total)'''),
    md(r"""
## 7. Try it yourself

The panel below runs `nst.transfer`'s loop with the settings you choose: α/β on a log slider over `nst.RATIO_RANGE`, the content layer, the style layers and their weights, optimiser, initialisation, steps and size. Press **Run**; the preview and the loss curve update as it goes, and changing α/β or the layers during a run continues from the current image with the new objective. **Stop** keeps the best image so far, **Save** writes it as a PNG with the settings in its metadata. The panel starts with this notebook's settings.
"""),
    code('''\
panel = nst.widgets.TransferPanel(content, style, config=base)
panel''', tags=("nbval-ignore-output",)),
    md(r"""
The cell below runs the panel's current settings to completion without the buttons (the tests use it to check the panel end to end); it takes as long as one transfer above.
"""),
    code('''\
# NBVAL_CHECK_OUTPUT
result = panel.run_sync()
print(f"steps run: {result.steps}, α/β {result.config.ratio:.3g}, content {result.config.content_layers}")
print(f"loss {result.losses()[0]:.3g} -> {result.best_total:.3g}, loss decreased: {result.best_total < result.losses()[0]}")'''),
    md(r"""
## Summary

- $\mathcal{L}_\text{total} = \alpha\mathcal{L}_\text{content}+\beta\mathcal{L}_\text{style}$; with the paper's normalisations α/β = 10⁻³ balances the two terms on the normalised VGG-19.
- Small α/β gives a texture of the painting, large α/β the photograph; matching style up to `relu5_1` gives the most painterly results (Fig. 4).
- A high content layer (`relu4_2`) lets the style repaint the image; a low one (`relu2_2`) only blends it over the photograph (Fig. 5).
- The initialisation matters little once the optimisation has converged; noise makes each seed different (Fig. 6).
- Total variation smooths the result at the cost of fine strokes. L-BFGS-B needs no learning rate; from noise it starts slowly (in the 8-step test mode Adam is still ahead) and pulls ahead as the steps accumulate, which is why the paper uses it.

## Exercises

1. Reproduce the paper's Fig. 3 ratios on your own photograph: 10⁻³, 8×10⁻⁴, 5×10⁻³, 5×10⁻⁴. Which one do you prefer, and does it depend on the style?
2. Transfer with `STYLE = "composition"` and `"mosaic"`. Which style survives at α/β = 10⁻²?
3. Run four white-noise initialisations (`seed=0..3`) and compare them (the bottom row of Fig. 6).
4. Set `pooling="max"` in `nst.make_extractor` and `base`; compare with average pooling.
5. With `style_scale="own"`, the style image keeps its own scale instead of being resized to the content's size. How does the size of the strokes change when the style image is larger than the content?
6. At 128 px, how many steps does a noise start need before it looks like the content-initialised result?
"""),
]


def write(name: str, cells: list) -> Path:
    nb = new_notebook(cells=cells, metadata=METADATA)
    path = NOTEBOOKS / name
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return path


def main() -> int:
    NOTEBOOKS.mkdir(exist_ok=True)
    for name, cells in (
        ("01_content_reconstruction.ipynb", NB01),
        ("02_style_reconstruction.ipynb", NB02),
        ("03_style_transfer.ipynb", NB03),
    ):
        print(write(name, cells).relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
