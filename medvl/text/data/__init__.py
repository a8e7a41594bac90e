"""Vocabulary files shipped with medvl.text (label space, concept lexicon)."""
