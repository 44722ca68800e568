"""Text clean-up for transcripts: Simplified script, hallucination and loop guards, light
normalisation for retrieval, and the scoring normalisation / CER used by tests and bench."""
from __future__ import annotations

import re
import unicodedata

from index_builder.normalize import to_simplified  # noqa: F401 - one OpenCC converter per process


# --- hallucinations -------------------------------------------------------------------------

# Phrases Whisper produces on silence, music or noise (subtitle credits learnt from its
# training data). A segment that matches one of these is dropped; see is_hallucination().
HALLUCINATION_PATTERNS = [
    r"字幕\s*(由|提供|制作|翻译|校对|组)",
    r"(由|提供).{0,12}字幕",
    r"(中文|简体|繁体)?字幕.{0,10}(志愿者|社区|网友|组)",
    r"Amara\.org",
    r"明镜与点点",
    r"点赞.{0,6}订阅.{0,6}(转发|打赏|栏目)",
    r"(请|欢迎|记得)(不吝)?(点赞|订阅)",
    r"订阅.{0,4}(频道|我的频道)",
    r"感谢(您|你们?|大家)的?(观看|收看|收听)",
    r"谢谢(大家|您|你们?)的?(观看|收看|收听)",
    r"^(谢谢|感谢)(观看|收看|收听)",
    r"本(视频|节目)(由|来自)",
    r"优优独播剧场",
    r"YoYo Television",
    r"索兰娅",
    r"by\s+bwd6",
    r"请不吝点赞",
    r"^\W*(嗯|啊|呃|哦)?\W*$",
]
_HALLUCINATION_RES = [re.compile(p, re.IGNORECASE) for p in HALLUCINATION_PATTERNS]


def is_hallucination(text: str, min_rest: int = 4) -> bool:
    """True for text that is a known silence/noise hallucination (or nothing but punctuation):
    outside the known phrases, fewer than ``min_rest`` characters, or less than half the text,
    are left. Real speech that merely contains such a phrase ("本节目由……冠名播出，欢迎收看"
    read by an announcer) is speech, not a subtitle credit."""
    t = to_simplified(text.strip())
    covered = [False] * len(t)
    for pattern in _HALLUCINATION_RES:
        for m in pattern.finditer(t):
            covered[m.start():m.end()] = [True] * (m.end() - m.start())
    if not any(covered) and t:
        return False
    rest = _bare("".join(ch for ch, c in zip(t, covered) if not c))
    return len(rest) < min_rest or len(rest) < len(_bare(t)) / 2


# --- prompt echo ----------------------------------------------------------------------------


def _bare(text: str) -> str:
    return re.sub(r"[\W_]+", "", text)


def echoes_prompt(text: str, prompt: str, min_len: int = 6) -> bool:
    """True when a segment merely repeats the decoding prompt: it starts with the prompt's
    lead-in ("以下是普通话…", which nobody says to a kiosk), or is a piece of the prompt at least
    half its length. A short piece ("营业执照") is a real question and is kept."""
    t, p = _bare(to_simplified(text)), _bare(prompt)
    if not t or not p:
        return False
    if len(p) >= min_len and t.startswith(p[:min_len]):
        return True
    return len(t) >= max(min_len, len(p) // 2) and t in p


def strip_prompt_echo(text: str, prompt: str, min_len: int = 8, lead: str = "以下是普通话的句子") -> str:
    """Remove pieces of ``text`` copied from the prompt: any run of at least ``min_len``
    characters (punctuation ignored) found in the prompt, and any run of four or more
    characters of the lead-in sentence, which nobody says."""
    if not text or not prompt:
        return text
    p = _bare(to_simplified(prompt))
    lead_b = _bare(lead)
    idx = [i for i, ch in enumerate(text) if not re.match(r"[\W_]", ch)]
    bare = "".join(text[i] for i in idx)
    cut: list[tuple[int, int]] = []
    i = 0
    while i < len(bare):
        n = 0
        while i + n < len(bare) and bare[i:i + n + 1] in p:
            n += 1
        piece = bare[i:i + n]
        if n >= min_len or (n >= 4 and piece in lead_b):
            cut.append((idx[i], idx[i + n - 1] + 1))
            i += n
        else:
            i += 1
    if not cut:
        return text
    out, pos = [], 0
    for a, b in cut:
        out.append(text[pos:a])
        pos = b
    out.append(text[pos:])
    joined = "".join(out)
    joined = re.sub(r"([，,。、；;])[，,。、；;\s]+", r"\1", joined)
    return joined.strip(" ，,、；;")


_ASCII_TO_FULL = {",": "，", "?": "？", "!": "！", ";": "；", ":": "："}


def tidy_punctuation(text: str) -> str:
    """NFKC (odd forms such as ﹐), then ASCII , ? ! ; : next to Chinese written full-width."""
    t = unicodedata.normalize("NFKC", text)
    return re.sub(r"(?<=[\u4e00-\u9fff])[,?!;:]|[,?!;:](?=[\u4e00-\u9fff])",
                  lambda m: _ASCII_TO_FULL[m.group(0)], t)


# --- decoding loops -------------------------------------------------------------------------


def collapse_repeats(text: str, max_repeats: int = 2, min_unit: int = 1, max_unit: int = 20) -> str:
    """Cut a phrase repeated back to back three or more times (a decoding loop): phrases of
    four or more characters to one copy ("我要办营业执照我要办营业执照我要办营业执照" -> one),
    shorter ones to ``max_repeats`` copies ("好的好的好的好的" -> "好的好的"), single characters
    to three (people do say "对对对")."""
    for unit in range(min_unit, max_unit + 1):  # shortest period first
        keep = 1 if unit >= 4 else (max_repeats if unit > 1 else max(max_repeats, 3))
        times = max(keep, 2)  # a phrase is a loop from its third copy on
        pattern = re.compile(r"(.{%d})\1{%d,}" % (unit, times), re.DOTALL)
        text = pattern.sub(lambda m: m.group(1) * keep, text)
    return text


def bound_length(text: str, audio_seconds: float, max_chars_per_second: float) -> str:
    """Trim a transcript longer than fast Mandarin allows for its audio (a decoding loop):
    collapse repeated phrases first, then cut at the bound."""
    limit = max(8, int(max_chars_per_second * max(audio_seconds, 0.0) + 0.5))
    if len(_bare(text)) <= limit:
        return text
    text = collapse_repeats(text, max_repeats=1)
    if len(_bare(text)) <= limit:
        return text
    out, n = [], 0
    for ch in text:
        if not (ch.isalnum()):
            out.append(ch)
            continue
        if n >= limit:
            break
        out.append(ch)
        n += 1
    return "".join(out).rstrip("，,、 ")


# --- light normalisation for retrieval ------------------------------------------------------

# At the start of a clause: 那个/这个/就是说/额 only before a pause (这个要多久 and 额度 are
# content), pure hesitation sounds always; 嗯/呃 anywhere (they are never content words).
_FILLER_RE = re.compile(
    r"(?:(?<=^)|(?<=[，,。？?！!\s]))"
    r"(?:(?:那个|这个|就是说|然后呢|额|唔)[，,、\s]+|(?:嗯|呃|啊|诶|欸)+[，,、\s]*)"
)
_FILLER_CHAR_RE = re.compile(r"[嗯呃]+[，,、]?")
_CN_DIGITS = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4",
              "五": "5", "六": "6", "七": "7", "八": "8", "九": "9"}
_CN_DIGIT_RUN = re.compile("[零〇一幺二三四五六七八九]{3,}")


def normalize_for_retrieval(text: str) -> str:
    """Light clean-up of a spoken query before retrieval: Simplified script, full-width forms,
    filler words (嗯, 呃, a leading 那个/这个) removed, digit-by-digit Chinese numbers of three or
    more digits (phone numbers such as 幺二三四五) written in Arabic digits, spaces tidied.
    Counting numbers (两个工作日, 三十岁) are left as they are."""
    t = unicodedata.normalize("NFKC", to_simplified(text))
    prev = None
    while prev != t:
        prev, t = t, _FILLER_RE.sub("", t)
    t = _FILLER_CHAR_RE.sub("", t)
    t = _CN_DIGIT_RUN.sub(lambda m: "".join(_CN_DIGITS[c] for c in m.group(0)), t)
    t = re.sub(r"\s+", " ", t).strip(" ，,")
    return t


# --- scoring --------------------------------------------------------------------------------

_TAG_RE = re.compile(r"<[^<>]{1,40}>|\[[A-Za-z0-9_ ]{1,20}\]")
_CN_NUM = "零一二三四五六七八九"


def _cardinal(n: int) -> str:
    if n == 0:
        return "零"
    units = [(10 ** 8, "亿"), (10 ** 4, "万")]
    for size, name in units:
        if n >= size:
            hi, lo = divmod(n, size)
            rest = _cardinal(lo) if lo else ""
            if lo and lo < size // 10:
                rest = "零" + rest
            return _cardinal(hi) + name + rest
    out, zero = "", False
    for size, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d, n = divmod(n, size)
        if d:
            if zero and out:
                out += "零"
            out += _CN_NUM[d] + name
            zero = False
        elif out:
            zero = True
    if out.startswith("一十"):
        out = out[1:]
    return out


def arabic_to_chinese(text: str) -> str:
    """Arabic digit runs to Chinese numerals, as ../shared/audio/PROVENANCE.md describes for
    tools/cer.py: cardinal reading (26 -> 二十六, 8 -> 八); digit by digit for 4 digits followed
    by 年, 5 or more digits, or a leading 0; N% -> 百分之N."""
    def digits(s: str) -> str:
        return "".join(_CN_NUM[int(c)] for c in s)

    def number(s: str, following: str) -> str:
        if (len(s) == 4 and following == "年") or len(s) >= 5 or (len(s) > 1 and s[0] == "0"):
            return digits(s)
        return _cardinal(int(s))

    def repl(m: re.Match) -> str:
        run, pct = m.group(1), m.group(2)
        nxt = m.string[m.end():m.end() + 1]
        body = number(run, nxt)
        return "百分之" + body if pct else body

    return re.sub(r"(\d+)(%|％)?", repl, text)


def normalize_for_scoring(text: str) -> str:
    """Reference/hypothesis normalisation for CER: strip tags (<music>, [S1]), full-width to
    half-width, Traditional to Simplified, Arabic digits to Chinese numerals, drop punctuation,
    spaces and letter case."""
    t = _TAG_RE.sub("", text)
    t = unicodedata.normalize("NFKC", t)
    t = to_simplified(t)
    t = arabic_to_chinese(t)
    t = "".join(ch for ch in t if ch.isalnum()).lower()
    return t


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


def cer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(character edits, reference length) after normalize_for_scoring; CER = edits / length."""
    r, h = normalize_for_scoring(reference), normalize_for_scoring(hypothesis)
    return edit_distance(r, h), len(r)
