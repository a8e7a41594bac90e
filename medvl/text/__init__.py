"""Report text: sections, sentences, findings labeller, concept lexicon, tokenizers, PHI masking, prompts.

Modules (import what you need; the package itself imports nothing heavy):

- :mod:`medvl.text.iu_xray`: the IU X-ray (Open-i) report archive.
- :mod:`medvl.text.sections`, :mod:`medvl.text.sentences`: report structure.
- :mod:`medvl.text.labels`, :mod:`medvl.text.labeller`: the CheXpert-style findings labeller.
- :mod:`medvl.text.lexicon`: radiology concepts with UMLS CUIs and their mentions.
- :mod:`medvl.text.tokenizer`: WordPiece tokenizers trained on report corpora.
- :mod:`medvl.text.phi`: PHI detection and masking.
- :mod:`medvl.text.prompts`: zero-shot prompt pairs.
- :mod:`medvl.text.concepts`: the concept vocabulary of the patch-concept term.
- :mod:`medvl.text.key_images`: the key images a report cites ("(series 2, image 34)").
"""
