"""Random SigLIP stand-ins: a checkpoint folder that loads through the very `from_pretrained` call production uses.

Nothing can be downloaded in tests or on this machine, so a SigLIP of any size is made here from its config, with random
weights and a real SentencePiece tokenizer trained on a few fashion phrases (SigLIP's tokenizer is a `spiece.model`).
Tiny ones exercise every code path in tests; `SIGLIP_B16_224` (the published config of google/siglip-base-patch16-224)
gives real CPU timings. The random CLIP stand-ins live beside the demo (`stylishi.demo.save_random_clip`).
"""
from __future__ import annotations

import io
from pathlib import Path

# google/siglip-base-patch16-224's config.json, typed in: 768-wide ViT-B/16 and text tower, 12 layers, 12 heads.
SIGLIP_B16_224 = dict(image_size=224, patch_size=16, vision=(768, 3072, 12, 12), text=(768, 3072, 12, 12),
                      max_tokens=64)

_PHRASES = [
    "a red dress", "a blue striped t-shirt", "black casual shoes", "a green cap", "navy blue trousers",
    "a beige handbag", "a photo of a yellow skirt", "a grey checked jacket", "a pink polka dot dress",
    "purple, brown and orange", "white sneakers for men", "women's summer blouse", "une robe rouge",
    "ein blaues hemd", "vestido verde", "leather belt", "wool scarf", "sports watch", "denim jeans",
]


def train_tokenizer(path: str | Path, *, vocab_size: int = 200) -> Path:
    """A small SentencePiece unigram model with SigLIP's special ids (pad 0, eos 1, unk 2, no bos)."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_PHRASES * 20), model_writer=buf, vocab_size=vocab_size, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    path = Path(path)
    path.write_bytes(buf.getvalue())
    return path


def save_tiny_siglip(out_dir: str | Path, *, image_size: int = 32, dim: int = 48, seed: int = 0) -> Path:
    """A small random SigLIP (model + processor) written with save_pretrained: a stand-in for the real checkpoint."""
    return save_random_siglip(out_dir, image_size=image_size, patch_size=8, vision=(dim, 2 * dim, 2, 2),
                              text=(dim, 2 * dim, 2, 2), max_tokens=16, seed=seed)


def save_random_siglip(out_dir: str | Path, *, image_size: int, patch_size: int, vision: tuple[int, int, int, int],
                       text: tuple[int, int, int, int], max_tokens: int = 64, seed: int = 0) -> Path:
    """A random SigLIP of any size; `vision`/`text` are (width, mlp width, layers, heads), both towers as wide (SigLIP
    has no projection: each tower's output is its width). SIGLIP_B16_224 gives real timings."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor, SiglipTokenizer

    if vision[0] != text[0]:
        raise ValueError(f"SigLIP's towers must be equally wide to share one space; got {vision[0]} and {text[0]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spiece = train_tokenizer(out / "spiece.model")
    tokenizer = SiglipTokenizer(vocab_file=str(spiece), model_max_length=max_tokens)
    ids = dict(pad_token_id=0, eos_token_id=1, bos_token_id=1)
    config = SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=text[0], intermediate_size=text[1],
                         num_hidden_layers=text[2], num_attention_heads=text[3], max_position_embeddings=max_tokens,
                         projection_size=text[0], **ids),
        vision_config=dict(image_size=image_size, patch_size=patch_size, hidden_size=vision[0],
                           intermediate_size=vision[1], num_hidden_layers=vision[2], num_attention_heads=vision[3]),
    )
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    model.save_pretrained(out)
    return out
