"""Which slices of a volume a training batch reads: evenly spread, or jittered from the item's seed."""

from __future__ import annotations

import numpy as np

from medvl.augment import STREAM_SLICES, seed_uniforms
from medvl.data.cache import even_slices, jittered_slices, with_required
from tests.test_data_cache import built, cohort  # noqa: F401


def test_jittered_slices_take_one_from_each_run_and_reach_every_slice():
    rng = np.random.default_rng(0)
    seen = np.zeros(50, int)
    for _ in range(400):
        picks = jittered_slices(50, 24, rng.random(24))
        runs = np.arange(24) * 50 // 24, np.arange(1, 25) * 50 // 24
        assert len(picks) == 24 and np.all((runs[0] <= picks) & (picks < runs[1]))
        seen[picks] += 1
    assert seen.min() > 0  # even_slices never reaches 26 of these 50
    assert len(set(range(50)) - set(even_slices(50, 24).tolist())) == 26
    assert jittered_slices(7, 24, rng.random(24)).tolist() == list(range(7))


def test_read_batch_reads_the_drawn_slices(cohort, tmp_path):  # noqa: F811
    cache = built(cohort, tmp_path)
    ct = int(np.flatnonzero(cache.is_volume & (cache.depths == 5))[0])  # the 5-slice NIfTI CT
    whole = cache[ct]
    draws = seed_uniforms(np.array([11, 12], np.uint64), 2, stream=STREAM_SLICES)
    pixels, depth, z_mm = cache.read_batch([ct, ct], 2, draws)
    for k in range(2):
        picks = jittered_slices(5, 2, draws[k])
        assert depth[k] == 2 and np.allclose(z_mm[k], whole["z_mm"].numpy()[picks])
        assert np.array_equal(pixels[k], np.rint(whole["image"].numpy()[picks, 0] * 255).astype(np.uint8))
    again = cache.read_batch([ct], 2, seed_uniforms(np.array([11], np.uint64), 2, stream=STREAM_SLICES))
    assert np.array_equal(again[2][0], z_mm[0])  # same seed, same slices (resume sees the same batch)


def test_training_batches_draw_each_volumes_slices_from_its_seed(cohort, tmp_path):  # noqa: F811
    from medvl.text.tokenizer import train_wordpiece
    from medvl.train.batches import PairBatches
    from medvl.train.text_ids import TokenBank

    cache = built(cohort, tmp_path)
    ct = np.flatnonzero(cache.is_volume & (cache.depths == 5))[:1]
    tokenizer = train_wordpiece(["CT report."] * 4, vocab_size=700, min_frequency=1)
    bank = TokenBank.build([["CT report."]], tokenizer, 16)
    even = PairBatches(cache, ct, bank, max_slices=2)
    jittered = PairBatches(cache, ct, bank, max_slices=2, slice_draw="jittered")
    z = {seed: jittered[[(0, seed)]]["z_mm"][0].tolist() for seed in range(12)}
    assert all(even[[(0, seed)]]["z_mm"][0].tolist() == even[[(0, 0)]]["z_mm"][0].tolist() for seed in range(12))
    assert len({tuple(v) for v in z.values()}) > 2 and jittered[[(0, 5)]]["z_mm"][0].tolist() == z[5]


def test_required_slices_replace_the_nearest_picks():
    assert with_required(np.array([0, 4, 8, 12]), [5]).tolist() == [0, 5, 8, 12]
    assert with_required(np.array([0, 4, 8, 12]), [4, -1]).tolist() == [0, 4, 8, 12]
    assert with_required(np.array([0, 4, 8, 12]), [5, 6]).tolist() == [0, 5, 6, 12]  # 4 went to 5; then 8 to 6
    assert with_required(np.array([0, 4]), [1, 2, 3]).tolist() == [1, 2]  # more than fit: the first ones


def test_training_batches_show_the_key_image_a_report_cites(cohort, tmp_path):  # noqa: F811
    """With key images, the cited slice (image 1 is the top one) is always among a volume's training slices and
    ``key_slices`` says where on the slice axis it lies."""
    from medvl.text.concepts import ConceptVocabulary
    from medvl.text.lexicon import Lexicon
    from medvl.text.tokenizer import train_wordpiece
    from medvl.train.batches import PairBatches
    from medvl.train.text_ids import TokenBank

    cache = built(cohort, tmp_path)
    ct = np.flatnonzero(cache.is_volume & (cache.depths == 5))[:1]
    report = "There is a 1.2 cm pulmonary nodule in the right lower lobe (series 2, image 2). Small pleural effusion."
    tokenizer = train_wordpiece([report] * 4, vocab_size=700, min_frequency=1)
    vocabulary = ConceptVocabulary(["lung nodule", "pleural effusion"], Lexicon.default())
    batches = PairBatches(cache, ct, TokenBank.build([[report]], tokenizer, 48), max_slices=2, concepts=vocabulary,
                          slice_draw="jittered", key_images=True)  # fmt: skip
    top_second = np.sort(cache[int(ct[0])]["z_mm"].numpy())[-2]  # image 2: the second slice from the head
    for seed in range(8):
        batch = batches[[(0, seed)]]
        key = int(batch["key_slices"][0, 0])
        assert batch["key_slices"][0, 1] == -1 and batch["z_mm"][0, key] == top_second
    assert "key_slices" not in PairBatches(cache, ct, TokenBank.build([[report]], tokenizer, 48), max_slices=2,
                                           concepts=vocabulary)[[(0, 0)]]  # fmt: skip
