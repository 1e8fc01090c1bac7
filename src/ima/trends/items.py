"""What a post is about, for trend counting: its content words, names and hashtags.

Read from the post's prepared text (`ima.analysis.prepare`: NFKC, links gone, Japanese
already split into words by MeCab), lowercased, without stemming, so that a trend's
words are the posts' own. Function words, numbers, one-letter words and Japanese words
written only in hiragana (particles, endings) are left out: they are never news.
"""

from __future__ import annotations

import re

from ima.answer.question import STOP_WORDS

_WORD = re.compile(r"#?[^\W_][^\W_'’-]*(?:['’-][^\W_]+)*")
_MEANINGFUL_CJK = re.compile(r"[\u3005\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_EXTRA_STOP = frozenset(
    """the be to of and a in that have it for not on with he as you do at this but his by
    from they we say her she or an will my one all would there their what so up out if
    about who get which go me when make can like time no just him know take into year
    your good some could them see other than then now look only come its over think also
    back after use two how our work first well way even new want because any these give
    day most us is are was were been has had did got am im i'm it's don't can't yes
    really much many very lol omg oh ok okay too here more still just being going every
    never always thing things something someone anyone nothing everything""".split()
)
STOP = STOP_WORDS | _EXTRA_STOP


def items_of(prepared: str) -> set[str]:
    """The distinct trend items of one post's prepared text."""
    out = set()
    for word in _WORD.findall(prepared.lower()):
        if word.isascii():
            bare = word.lstrip("#")
            if len(bare) < 3 or bare in STOP or bare.isdigit():
                continue
        elif len(word) < 2 or word in STOP or not _MEANINGFUL_CJK.search(word):
            continue
        out.add(word)
    return out
