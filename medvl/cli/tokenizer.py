"""Train a WordPiece tokenizer on report text and save it in Hugging Face format (works offline).

Each --corpus is a medvl manifest (.parquet), a CSV with a report column, a plain text file (one report per
paragraph) or the IU X-ray archive (NLMCXR_reports.tgz or its folder); give several to pool them. The whole
report text is used. Load the result with `medvl.text.tokenizer.load_tokenizer(DIR)` or
`transformers.PreTrainedTokenizerFast.from_pretrained(DIR)`.

Examples:
  medvl tokenizer --corpus ../shared/data/iu_reports/NLMCXR_reports.tgz -o tokenizers/iu-wp8k
  medvl tokenizer --corpus phantom/manifest.parquet --corpus notes.csv --text-column note -o tok --vocab-size 16000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "train a WordPiece tokenizer on report corpora (manifest, CSV, text file, IU X-ray archive)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``medvl tokenizer``."""
    from medvl.data.corpus import SOURCES

    parser.add_argument(
        "--corpus", type=Path, action="append", required=True, help="corpus file or folder (repeat to pool several)"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder to write the tokenizer to")
    parser.add_argument("--source", choices=SOURCES, help="kind of every --corpus (default: guessed per file)")
    parser.add_argument("--text-column", help="CSV column holding the report text")
    parser.add_argument("--vocab-size", type=int, default=8000, help="largest vocabulary size (default 8000)")
    parser.add_argument("--min-frequency", type=int, default=2, help="minimum count of a word piece (default 2)")
    parser.add_argument("--cased", action="store_true", help="keep case and accents (default: lower-case)")
    parser.add_argument("--max-length", type=int, default=512, help="model_max_length to record (default 512)")


def run(args: argparse.Namespace) -> int:
    """Read the corpora, train, save; exit status 2 with one line on stderr for bad input."""
    from tqdm import tqdm

    from medvl.data.corpus import read_reports
    from medvl.text.errors import ReportSourceError
    from medvl.text.tokenizer import train_wordpiece

    texts: list[str] = []
    try:
        for corpus in tqdm(args.corpus, desc="reading corpora", unit="corpus", disable=None):
            texts += [r.text for r in read_reports(corpus, args.source, args.text_column, focus=False)]
        tokenizer = train_wordpiece(
            texts,
            vocab_size=args.vocab_size,
            out_dir=args.output,
            min_frequency=args.min_frequency,
            lowercase=not args.cased,
            model_max_length=args.max_length,
            show_progress=sys.stderr.isatty(),
        )
    except (ReportSourceError, ValueError) as exc:
        print(f"medvl tokenizer: error: {exc}", file=sys.stderr)
        return 2
    print(f"trained on {len(texts)} reports: vocabulary {len(tokenizer)} -> {args.output}")
    return 0
