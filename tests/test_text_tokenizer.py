"""WordPiece tokenizer training, offline save/load round trip, alphabet coverage, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medvl.cli import main
from medvl.text.tokenizer import DEFAULT_ALPHABET, load_tokenizer, train_wordpiece

CORPUS = [
    "FINDINGS: Mild cardiomegaly. Small left pleural effusion. No pneumothorax.",
    "IMPRESSION: Right lower lobe consolidation, possibly pneumonia.",
    "The lungs are clear. Heart size is normal. No acute cardiopulmonary abnormality.",
    "Bibasilar atelectasis. Degenerative changes of the thoracic spine.",
] * 30


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, Path]:
    out = tmp_path_factory.mktemp("tok")
    return train_wordpiece(CORPUS, vocab_size=900, out_dir=out, min_frequency=1), out


def test_round_trip_offline(saved: tuple[object, Path]) -> None:
    tokenizer, out = saved
    assert (out / "tokenizer.json").is_file() and (out / "tokenizer_config.json").is_file()
    loaded = load_tokenizer(out)
    text = "Mild cardiomegaly with a small left pleural effusion."
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.decode(loaded(text)["input_ids"], skip_special_tokens=True) == text.lower().replace(".", " .").replace(" .", ".")
    assert loaded.cls_token == "[CLS]" and loaded.pad_token == "[PAD]" and loaded.mask_token == "[MASK]"
    assert len(loaded) <= 900
    batch = loaded(["heart", "pleural effusion"], padding=True)
    assert len(batch["input_ids"][0]) == len(batch["input_ids"][1])


def test_loads_in_fresh_offline_process(saved: tuple[object, Path]) -> None:
    _, out = saved
    code = (
        "import sys; from transformers import AutoTokenizer; "
        f"t = AutoTokenizer.from_pretrained({str(out)!r}, local_files_only=True); "
        "print(t.tokenize('pleural effusion'))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pleural" in result.stdout


def test_unseen_letters_do_not_make_words_unknown(saved: tuple[object, Path]) -> None:
    tokenizer, _ = saved
    vocab = tokenizer.get_vocab()
    assert all(c in vocab and "##" + c in vocab for c in DEFAULT_ALPHABET)
    tokens = tokenizer.tokenize("pneumothoraxø Øresund µm ħilum zygoma")
    assert "[UNK]" not in tokens
    assert "ø" in tokens or "##ø" in tokens


def test_rejects_tiny_vocab_and_empty_corpus() -> None:
    with pytest.raises(ValueError, match="too small"):
        train_wordpiece(CORPUS, vocab_size=50)
    with pytest.raises(ValueError, match="no text"):
        train_wordpiece(["", "   "], vocab_size=900)


def test_load_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        load_tokenizer(tmp_path)


def test_cli_trains_from_text_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text_file = tmp_path / "reports.txt"
    text_file.write_text("\n\n".join(CORPUS[:40]))
    csv_file = tmp_path / "notes.csv"
    csv_file.write_text("id,note\n1,Patchy opacity in the lingula\n2,Stable nodule\n")
    out = tmp_path / "tok"
    status = main(
        ["tokenizer", "--corpus", str(text_file), "--corpus", str(csv_file), "--text-column", "note",
         "-o", str(out), "--vocab-size", "1000", "--min-frequency", "1"]
    )
    assert status == 0
    assert "trained on 42 reports" in capsys.readouterr().out
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 512
    assert "lingula" in load_tokenizer(out).get_vocab()


def test_cli_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["tokenizer", "--corpus", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "tok")])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.csv: no such file" in err[0]
    bad = tmp_path / "corpus.txt"
    bad.write_text("tiny corpus")
    assert main(["tokenizer", "--corpus", str(bad), "-o", str(tmp_path / "tok"), "--vocab-size", "10"]) == 2
    assert "too small" in capsys.readouterr().err


def test_training_gives_the_same_vocabulary_in_every_process() -> None:
    """The Hugging Face trainer breaks ties in hash order unless the ``##`` pieces are declared up front."""
    script = (
        "import random, sys; from medvl.text.tokenizer import train_wordpiece\n"
        "rng = random.Random(0)\n"
        "words = 'no pleural effusion pneumothorax heart size normal nodule right upper lobe left base clear'.split()\n"
        "texts = [' '.join(rng.choice(words) for _ in range(12)) + '.' for _ in range(600)]\n"
        "vocab = train_wordpiece(texts, vocab_size=800).get_vocab()\n"
        "print(sorted(vocab.items(), key=lambda kv: kv[1]))\n"
    )
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
        for _ in range(3)
    ]
    assert len(runs[0]) > 1000 and runs[0] == runs[1] == runs[2]
