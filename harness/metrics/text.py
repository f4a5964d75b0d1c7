"""Word tokenization and offline sentence splitting shared by the metrics.

Diversity metrics count words by one documented rule (lowercase, then regex ``\\w+|[^\\w\\s]``: runs
of letters/digits/underscore, and every other non-space character as its own token), so numbers are
comparable across papers that state their rule. ROUGE keeps rouge-score's own tokenizer.
"""

from __future__ import annotations

import functools
import re

WORD_PATTERN = r"\w+|[^\w\s]"
_WORD_RE = re.compile(WORD_PATTERN)


def words(text: str) -> list[str]:
    """The default diversity tokens of `text`: lowercase words and single punctuation marks."""
    return _WORD_RE.findall(text.lower())


# ---------------------------------------------------------------- sentences (for rougeLsum)

# Words after which a period does not end a sentence (titles, Latin abbreviations, months...).
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt vs etc e.g i.e cf al fig no nos vol approx dept est gov inc ltd co "
    "corp jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k u.n a.m p.m".split()
)
# A candidate boundary: end punctuation, optional closing quotes/brackets, whitespace, and a next
# sentence that starts with an uppercase letter, a digit or an opening quote/bracket.
_BOUNDARY_RE = re.compile(r"([.!?]+[\"'\u201d\u2019)\]]*)\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9\u00C0-\u00DE])")


def _regex_split(line: str) -> list[str]:
    sentences, start = [], 0
    for match in _BOUNDARY_RE.finditer(line):
        if match.group(1).startswith(".") and len(match.group(1)) == 1:
            before = line[start:match.start()].split()
            last = before[-1].lower().rstrip(".") if before else ""
            # Titles and abbreviations ("Dr.", "U.S.") and initials ("J. K. Rowling") continue.
            if last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()):
                continue
        sentences.append(line[start:match.end(1)].strip())
        start = match.end()
    sentences.append(line[start:].strip())
    return [s for s in sentences if s]


@functools.lru_cache(maxsize=1)
def _punkt_available() -> bool:
    """NLTK's punkt model is used only when its data is installed; it is never downloaded."""
    try:
        import nltk

        nltk.data.find("tokenizers/punkt_tab/english/")
        nltk.sent_tokenize("Probe one. Probe two.")
        return True
    except Exception:  # LookupError without data; anything else means it is unusable here
        return False


def sentence_splitter_name(prefer: str = "auto") -> str:
    """Which splitter `split_sentences` will run: 'nltk-punkt' when its data is present, else 'regex'."""
    if prefer not in ("auto", "nltk-punkt", "regex"):
        raise ValueError(f"unknown sentence splitter {prefer!r}")
    if prefer == "auto":
        return "nltk-punkt" if _punkt_available() else "regex"
    return prefer


def split_sentences(text: str, splitter: str = "regex") -> list[str]:
    """Sentences of `text`: existing line breaks always split; each line is then split by `splitter`."""
    sentences = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if splitter == "nltk-punkt":
            import nltk

            sentences.extend(s.strip() for s in nltk.sent_tokenize(line) if s.strip())
        else:
            sentences.extend(_regex_split(line))
    return sentences
