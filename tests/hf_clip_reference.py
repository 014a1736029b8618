"""A Hugging Face CLIP vision tower, as named tensors and a functional forward, for loader tests.

Independent of open_clip and of ``detectors.blocks.hf_clip``: the state uses ``transformers``' parameter
names (``CLIPVisionTransformer``) and :func:`pooler_output` follows its computation (pre-LN,
pre-norm blocks with separate q/k/v projections and the query scaled by head_dim^-0.5, post-LN
on the class token). The default sizes are open_clip ``ViT-S-32``'s (width 384, 12 layers, 6 heads,
MLP 1536, patch 32), which uses exact GELU.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

WIDTH, LAYERS, HEADS, PATCH, MLP = 384, 12, 6, 32, 1536


def random_state(image_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with HF names for a ViT-S-32-sized tower at ``image_size`` px."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.02, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    tokens = (image_size // PATCH) ** 2 + 1
    state = {"embeddings.class_embedding": rnd(WIDTH, std=0.5),
             "embeddings.patch_embedding.weight": rnd(WIDTH, 3, PATCH, PATCH),
             "embeddings.position_embedding.weight": rnd(tokens, WIDTH, std=0.5)}
    for name in ("pre_layrnorm", "post_layernorm"):
        state[f"{name}.weight"], state[f"{name}.bias"] = rnd(WIDTH, std=0.1, mean=1.0), rnd(WIDTH, std=0.1)
    for i in range(LAYERS):
        p = f"encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            state[f"{p}self_attn.{proj}.weight"], state[f"{p}self_attn.{proj}.bias"] = rnd(WIDTH, WIDTH, std=0.08), rnd(WIDTH)
        for ln in ("layer_norm1", "layer_norm2"):
            state[f"{p}{ln}.weight"], state[f"{p}{ln}.bias"] = rnd(WIDTH, std=0.1, mean=1.0), rnd(WIDTH, std=0.1)
        state[f"{p}mlp.fc1.weight"], state[f"{p}mlp.fc1.bias"] = rnd(MLP, WIDTH, std=0.05), rnd(MLP)
        state[f"{p}mlp.fc2.weight"], state[f"{p}mlp.fc2.bias"] = rnd(WIDTH, MLP, std=0.05), rnd(WIDTH)
    return state


def pooler_output(state: dict[str, torch.Tensor], images: torch.Tensor, act=F.gelu) -> torch.Tensor:
    """HF ``CLIPVisionModel(...).pooler_output`` computed from ``state``: [B, WIDTH]."""
    def ln(x, name):
        return F.layer_norm(x, (WIDTH,), state[f"{name}.weight"], state[f"{name}.bias"], eps=1e-5)

    def lin(x, name):
        return F.linear(x, state[f"{name}.weight"], state[f"{name}.bias"])

    b = images.shape[0]
    x = F.conv2d(images, state["embeddings.patch_embedding.weight"], stride=PATCH).flatten(2).transpose(1, 2)
    x = torch.cat([state["embeddings.class_embedding"].expand(b, 1, WIDTH), x], 1)
    x = ln(x + state["embeddings.position_embedding.weight"], "pre_layrnorm")
    head_dim = WIDTH // HEADS
    for i in range(LAYERS):
        p = f"encoder.layers.{i}."
        h = ln(x, p + "layer_norm1")
        q, k, v = (lin(h, f"{p}self_attn.{n}_proj").view(b, -1, HEADS, head_dim).transpose(1, 2) for n in "qkv")
        attn = ((q * head_dim**-0.5) @ k.transpose(-1, -2)).softmax(-1)
        x = x + lin((attn @ v).transpose(1, 2).reshape(b, -1, WIDTH), p + "self_attn.out_proj")
        x = x + lin(act(lin(ln(x, p + "layer_norm2"), p + "mlp.fc1")), p + "mlp.fc2")
    return ln(x[:, 0], "post_layernorm")


# -- files written by ``transformers`` itself ------------------------------------------------------------
def transformers_config(image_size: int = 64):
    """A ``transformers`` ``CLIPVisionConfig`` with open_clip ``ViT-S-32``'s sizes (exact GELU, projection 384)."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=WIDTH, intermediate_size=MLP, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                            image_size=image_size, patch_size=PATCH, hidden_act="gelu", projection_dim=WIDTH)


def _spread(model: torch.nn.Module, seed: int) -> None:
    """Perturb every tensor (LayerNorms included), so a wrongly mapped one changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def saved_clip_vision(directory, image_size: int = 64, seed: int = 0):
    """A random-init ``transformers.CLIPVisionModel`` saved with ``save_pretrained`` into ``directory``.

    Returns the model and the vision tower's tensors as read back from the written ``model.safetensors``
    (keys without the ``vision_model.`` prefix some ``transformers`` versions write).
    """
    from safetensors.torch import load_file
    from transformers import CLIPVisionModel

    torch.manual_seed(seed)
    model = CLIPVisionModel(transformers_config(image_size)).eval()
    _spread(model, seed)
    model.save_pretrained(directory)
    state = load_file(f"{directory}/model.safetensors")
    return model, {k.removeprefix("vision_model."): v for k, v in state.items()}


def saved_gend(directory, image_size: int = 64, seed: int = 0):
    """GenD's Hugging Face layout (``feature_extractor`` = ``CLIPVisionModelWithProjection``, ``model.linear``
    = Linear(D, 2)) as a ``transformers`` ``PreTrainedModel`` saved with ``save_pretrained``; returns the model
    and the path of its ``model.safetensors``."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, PreTrainedModel

    class Head(torch.nn.Module):
        def __init__(self, width: int):
            super().__init__()
            self.linear = torch.nn.Linear(width, 2)

    class GenDLayout(PreTrainedModel):
        config_class = CLIPVisionConfig

        def __init__(self, config):
            super().__init__(config)
            self.feature_extractor = CLIPVisionModelWithProjection(config)
            self.model = Head(config.hidden_size)
            self.post_init()

    torch.manual_seed(seed)
    model = GenDLayout(transformers_config(image_size)).eval()
    _spread(model, seed)
    model.save_pretrained(directory)
    return model, f"{directory}/model.safetensors"
