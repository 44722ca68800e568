"""Sound-alike correction (index_builder/soundalike.py): non-words replaced by a same-sounding common
word, real words and the knowledge base's terms left alone, and few changes to correct text."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from index_builder.soundalike import (
    SoundAlikeCorrector,
    build_sound_index,
    default_corrector,
    load_sound_index,
    protected_ngrams,
)

SHARED_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"

# A hand-made dictionary: the checks below follow from these counts alone.
FREQ = {"篇章": 300, "偏": 80, "章": 90, "报到": 40, "报道": 4000, "结束": 5000, "的": 100000,
        "一个": 50000, "是": 90000, "这": 80000, "景德镇": 130, "井": 300, "德": 2000, "阵": 400}


def small(cost: float = 5.0, protected: set[str] | None = None) -> SoundAlikeCorrector:
    return SoundAlikeCorrector(FREQ, build_sound_index(FREQ, min_freq=1), [protected or set()], cost)


def test_non_word_becomes_the_word_that_sounds_the_same():
    text, changes = small().correct_with_changes("这是一个偏章的结束")
    assert text == "这是一个篇章的结束"
    assert [(c.original, c.replacement, c.position) for c in changes] == [("偏章", "篇章", 4)]
    assert small().correct("井德阵") == "景德镇"


def test_a_real_word_is_never_swapped_for_a_commoner_one():
    # 报道 is 100 times commoner and sounds the same, but 报到 is a word: a guess, not a fix
    assert small().correct("报到") == "报到"


def test_protected_spans_and_cost():
    assert small(protected={"偏章"}).correct("一个偏章") == "一个偏章"
    # 偏章 -> 篇章 changes one character and gains log P(篇章) - log P(偏) - log P(章) nats
    total = sum(FREQ.values())
    gain = math.log(300 * total / (80 * 90))
    assert small(cost=gain - 0.1).correct("偏章") == "篇章"
    assert small(cost=gain + 0.1).correct("偏章") == "偏章"
    with pytest.raises(ValueError):
        small(cost=0)


def test_the_services_own_words_count_more():
    # in general text 半点 is commoner than 办 followed by 点; at a service hall 办 is everywhere
    freq = {"半点": 1600, "办": 10000, "点": 25000, "的": 30_000_000}
    index = build_sound_index(freq, min_freq=1)
    assert SoundAlikeCorrector(freq, index).correct("办点") == "半点"
    hall = SoundAlikeCorrector(freq, index, domain={"办": 300, "事": 100})
    assert hall.correct("办点") == "办点"
    with pytest.raises(ValueError):
        SoundAlikeCorrector(freq, index, domain={"办": 1}, domain_weight=1.0)


def test_text_around_chinese_is_kept():
    assert small().correct("") == ""
    assert small().correct("偏") == "偏"
    assert small().correct("Hello 123，偏章 ok！") == "Hello 123，篇章 ok！"
    assert small().correct("偏,章") == "偏,章"  # never across punctuation


def test_protected_ngrams_are_every_span_of_two_to_four():
    grams = protected_ngrams(["随申办，abc一网通办"])
    assert {"随申", "申办", "随申办", "一网通办", "网通"} <= grams
    assert "办一" not in grams  # not across the comma and the Latin letters


def test_index_cache_is_reused_and_rebuilt_when_stale(tmp_path):
    dictionary = tmp_path / "dict.txt"
    dictionary.write_text("篇章 300 n\n偏 80 a\n章 90 n\n", encoding="utf-8")
    freq = {"篇章": 300, "偏": 80, "章": 90}
    cache = tmp_path / "cache" / "index.json"
    built = load_sound_index(freq, dictionary, 1, cache)
    assert built == {"pian1 zhang1": ["篇章"]} and cache.is_file()
    stored = json.loads(cache.read_text(encoding="utf-8"))
    stored["index"] = {"x": ["from cache"]}
    cache.write_text(json.dumps(stored), encoding="utf-8")
    assert load_sound_index(freq, dictionary, 1, cache) == {"x": ["from cache"]}  # same key: read
    assert load_sound_index(freq, dictionary, 500, cache) == {}  # other min_freq: rebuilt
    cache.write_text("{not json", encoding="utf-8")
    assert load_sound_index(freq, dictionary, 1, cache) == built  # unreadable: rebuilt


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return default_corrector(cache=tmp_path_factory.mktemp("soundalike") / "index.json")


def test_whisper_errors_fixed_with_jiebas_dictionary(real):
    # errors Whisper base made on the shared clips
    assert real.correct("要带着全部家当去井德阵做陶瓷") == "要带着全部家当去景德镇做陶瓷"
    assert real.correct("细胞膜孔细很小") == "细胞膜孔隙很小"
    # typed like a pinyin keyboard does
    assert real.correct("离昏协议怎么写") == "离婚协议怎么写"


def test_service_words_survive(real):
    # 微信 and 随申办 are missing from jieba's 2013 dictionary: the knowledge base protects them
    for text in ("我在微信上能办吗", "随申办上怎么办一网通办", "新生儿出生一件事怎么办", "我住在赵巷镇，要办居住证",
                 "报到手续在哪里办", "我想开个小饭店要准备什么材料", "周末想去办点事"):
        assert real.correct(text) == text


@pytest.mark.skipif(not (SHARED_EVAL / "citizen_messages_dev.tsv").is_file(),
                    reason=f"real citizen messages not found at {SHARED_EVAL}")
def test_few_changes_to_real_text_we_did_not_write(real):
    from bench.soundalike import correct_texts, false_changes

    texts = correct_texts(limit=600)["citizen messages"]
    changed, total, _pairs = false_changes(real, texts)
    # measured 1.5 per 1,000 characters at the default cost (bench.soundalike)
    assert total > 100_000 and changed / total < 2.5 / 1000


def test_transcriber_applies_it_and_can_turn_it_off():
    from test_voice import scripted

    audio = np.zeros(16000 * 3, np.float32)
    assert scripted("这是一个偏章的结束").transcribe(audio).text == "这是一个篇章的结束"
    from voice import Transcriber
    from test_voice import ScriptedModel

    off = Transcriber(model=ScriptedModel("这是一个偏章的结束"), vad_filter=False, correct_soundalikes=False)
    assert off.transcribe(audio).text == "这是一个偏章的结束"


def test_every_span_of_an_index_term_is_protected():
    from index_builder.soundalike import for_vocabulary

    # jieba's dictionary has 卫建, so 卫健 alone reads as a slip; an index holding 卫健委 keeps it
    assert default_corrector().correct("国家卫健委") == "国家卫建委"
    assert for_vocabulary(["卫健委", "of", "12345"]).correct("国家卫健委") == "国家卫健委"
